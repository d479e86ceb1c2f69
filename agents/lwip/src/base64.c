/* Base64 (RFC 4648, with padding): the protocol's `data` fields. */
#include "agent.h"

#include <stdlib.h>
#include <string.h>

static const char ALPHABET[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

json_t *base64_json(const unsigned char *bytes, size_t length)
{
    size_t size = 4 * ((length + 2) / 3);
    char *text = malloc(size + 1);
    size_t out = 0;
    for (size_t i = 0; i < length; i += 3) {
        unsigned long group = (unsigned long)bytes[i] << 16;
        if (i + 1 < length)
            group |= (unsigned long)bytes[i + 1] << 8;
        if (i + 2 < length)
            group |= bytes[i + 2];
        text[out++] = ALPHABET[(group >> 18) & 63];
        text[out++] = ALPHABET[(group >> 12) & 63];
        text[out++] = i + 1 < length ? ALPHABET[(group >> 6) & 63] : '=';
        text[out++] = i + 2 < length ? ALPHABET[group & 63] : '=';
    }
    text[out] = '\0';
    json_t *value = json_stringn(text, out);
    free(text);
    return value;
}

static int sextet(char c)
{
    const char *at = c ? strchr(ALPHABET, c) : NULL;
    return at != NULL ? (int)(at - ALPHABET) : -1;
}

unsigned char *base64_decode(const char *text, size_t *length)
{
    size_t size = strlen(text);
    if (size % 4 != 0)
        return NULL;
    unsigned char *bytes = malloc(size / 4 * 3 + 1);
    size_t out = 0;
    for (size_t i = 0; i < size; i += 4) {
        int a = sextet(text[i]), b = sextet(text[i + 1]);
        bool last = i + 4 == size;
        bool pad2 = last && text[i + 2] == '=' && text[i + 3] == '=';
        bool pad1 = last && !pad2 && text[i + 3] == '=';
        int c = pad2 ? 0 : sextet(text[i + 2]), d = (pad1 || pad2) ? 0 : sextet(text[i + 3]);
        if (a < 0 || b < 0 || c < 0 || d < 0) {
            free(bytes);
            return NULL;
        }
        unsigned long group = ((unsigned long)a << 18) | ((unsigned long)b << 12) |
                              ((unsigned long)c << 6) | (unsigned long)d;
        bytes[out++] = (unsigned char)(group >> 16);
        if (!pad2)
            bytes[out++] = (unsigned char)(group >> 8);
        if (!pad1 && !pad2)
            bytes[out++] = (unsigned char)group;
    }
    *length = out;
    return bytes;
}
