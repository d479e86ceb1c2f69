/* cf-lwip-agent: reads requests (one JSON object per line) on stdin, answers each with one
 * line on stdout, in the order received; a request with "background": true runs on a
 * thread of its own and answers when it completes. Diagnostics go to stderr, and so does
 * whatever lwIP itself prints (its assertions print on stdout): the responses have the
 * original stdout to themselves. At the end of input it stops the waiting calls, closes
 * every socket and exits 0. */
#define _GNU_SOURCE
#include "agent.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static FILE *responses; /* the original stdout */
static pthread_mutex_t output_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_mutex_t threads_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t threads_done = PTHREAD_COND_INITIALIZER;
static int running_threads;

json_t *reply_result(json_t *value)
{
    return json_pack("{s:o}", "result", value);
}

json_t *reply_errno(int number)
{
    return json_pack("{s:s}", "errno", errno_name(number));
}

static json_t *reply_text(const char *key, const char *fmt, va_list list)
{
    char *text = NULL;
    if (vasprintf(&text, fmt, list) < 0)
        text = NULL;
    json_t *reply = json_pack("{s:s}", key, text != NULL ? text : "?");
    free(text);
    return reply;
}

json_t *reply_unsupported(const char *fmt, ...)
{
    va_list list;
    va_start(list, fmt);
    json_t *reply = reply_text("unsupported", fmt, list);
    va_end(list);
    return reply;
}

json_t *reply_error(const char *fmt, ...)
{
    va_list list;
    va_start(list, fmt);
    json_t *reply = reply_text("error", fmt, list);
    va_end(list);
    return reply;
}

/* Writes one response line; `id` is a JSON integer or null. Steals `reply`. */
static void send_response(json_t *id, json_t *reply)
{
    json_t *response = json_pack("{s:O}", "id", id != NULL ? id : json_null());
    json_object_update(response, reply);
    json_decref(reply);
    char *line = json_dumps(response, JSON_COMPACT);
    json_decref(response);
    pthread_mutex_lock(&output_lock);
    fputs(line, responses);
    fputc('\n', responses);
    fflush(responses);
    pthread_mutex_unlock(&output_lock);
    free(line);
}

static void *run_background(void *arg)
{
    json_t *request = arg;
    json_t *id = json_object_get(request, "id");
    const char *call = json_string_value(json_object_get(request, "call"));
    send_response(id, perform_call(call, json_object_get(request, "args"), true));
    json_decref(request);
    pthread_mutex_lock(&threads_lock);
    running_threads--;
    pthread_cond_broadcast(&threads_done);
    pthread_mutex_unlock(&threads_lock);
    return NULL;
}

static void handle_line(const char *line)
{
    json_error_t problem;
    json_t *request = json_loads(line, 0, &problem);
    if (request == NULL) {
        send_response(NULL, reply_error("request is not JSON: %s", problem.text));
        return;
    }
    json_t *id = json_object_get(request, "id");
    json_t *call = json_object_get(request, "call");
    json_t *args = json_object_get(request, "args");
    json_t *background = json_object_get(request, "background");
    if (!json_is_object(request) || !json_is_integer(id)) {
        send_response(NULL, reply_error("id must be an integer"));
    } else if (!json_is_string(call)) {
        send_response(id, reply_error("call must be a string"));
    } else if (args != NULL && !json_is_object(args)) {
        send_response(id, reply_error("args must be an object"));
    } else if (background != NULL && !json_is_boolean(background)) {
        send_response(id, reply_error("background must be true or false"));
    } else {
        if (args == NULL)
            json_object_set_new(request, "args", json_object());
        if (json_is_true(background)) {
            pthread_t thread;
            pthread_mutex_lock(&threads_lock);
            running_threads++;
            pthread_mutex_unlock(&threads_lock);
            json_incref(request);
            if (pthread_create(&thread, NULL, run_background, request) == 0) {
                pthread_detach(thread);
            } else {
                json_decref(request);
                pthread_mutex_lock(&threads_lock);
                running_threads--;
                pthread_mutex_unlock(&threads_lock);
                send_response(id, reply_error("cannot start a thread for the call"));
            }
        } else {
            send_response(id, perform_call(json_string_value(call), json_object_get(request, "args"), false));
        }
    }
    json_decref(request);
}

static void append(char **line, size_t *capacity, size_t *length, const char *from, size_t count)
{
    if (*length + count + 1 > *capacity) {
        *capacity = (*length + count + 1) * 2;
        *line = realloc(*line, *capacity);
        if (*line == NULL) {
            fprintf(stderr, "cf-lwip-agent: out of memory\n");
            exit(2);
        }
    }
    memcpy(*line + *length, from, count);
    *length += count;
    (*line)[*length] = '\0';
}

/* One line of input, without its newline, into *line; -1 at the end of input. Read with
 * read(2), not stdio: a stream blocked in a read holds its lock, and lwIP's
 * LWIP_PLATFORM_ASSERT flushes every stream (fflush(NULL)) before abort(), so it would
 * wait for that lock for ever instead of ending the process. */
static ssize_t read_line(char **line, size_t *capacity)
{
    static char buffer[65536];
    static size_t start, end;
    size_t length = 0;
    append(line, capacity, &length, "", 0);
    for (;;) {
        char *newline = memchr(buffer + start, '\n', end - start);
        if (newline != NULL) {
            append(line, capacity, &length, buffer + start, (size_t)(newline - (buffer + start)));
            start = (size_t)(newline - buffer) + 1;
            return (ssize_t)length;
        }
        append(line, capacity, &length, buffer + start, end - start);
        start = end = 0;
        ssize_t got = read(STDIN_FILENO, buffer, sizeof buffer);
        if (got < 0 && errno == EINTR)
            continue;
        if (got <= 0)
            return length > 0 ? (ssize_t)length : -1;
        end = (size_t)got;
    }
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN); /* a closed pipe is an error on write, never a signal */
    int out = dup(STDOUT_FILENO);
    responses = out >= 0 ? fdopen(out, "w") : NULL;
    if (responses == NULL || dup2(STDERR_FILENO, STDOUT_FILENO) < 0) {
        perror("cf-lwip-agent: stdout");
        return 2;
    }
    if (!start_stack())
        return 2;
    char *line = NULL;
    size_t capacity = 0;
    ssize_t length;
    while ((length = read_line(&line, &capacity)) >= 0) {
        while (length > 0 && (line[length - 1] == '\n' || line[length - 1] == '\r'))
            line[--length] = '\0';
        if (length > 0)
            handle_line(line);
    }
    free(line);
    /* End of input: the waiting calls stop within a slice; then every socket is closed. */
    stop_background_calls();
    pthread_mutex_lock(&threads_lock);
    while (running_threads > 0)
        pthread_cond_wait(&threads_done, &threads_lock);
    pthread_mutex_unlock(&threads_lock);
    close_all_sockets();
    fprintf(stderr, "cf-lwip-agent: end of input, every socket closed\n");
    return 0;
}
