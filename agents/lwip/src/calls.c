/* The socket calls of docs/agent-protocol.md on lwIP's sockets API (lwip_*).
 *
 * Handles are lwIP's socket numbers. Foreground calls run on the main thread and may
 * block as lwIP's calls do. A background call runs on a thread of its own; one that may
 * wait (accept, connect, recv*, send*, poll) never blocks inside lwIP: it tries the call
 * without blocking and waits in lwip_poll slices between tries. Debian builds lwIP with
 * LWIP_NETCONN_FULLDUPLEX 0, where closing a socket that another thread is blocked on
 * frees what that thread waits on; waiting in slices lets `close` and the end of input
 * stop the waiters first. */
#include "agent.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "lwip/opt.h"
#include "lwip/def.h"
#include "lwip/sockets.h"

#define MAX_HANDLES 4096
#define WAIT_SLICE_MS 20
#define MAX_RECV_SIZE (1 << 20)

struct entry {
    bool is_tcp;
    bool closing;      /* close() or the end of input is waiting for the waiters */
    int waiters;       /* background calls using the socket */
    pthread_mutex_t op; /* one lwIP call on this socket at a time from the agent */
};

static pthread_mutex_t table_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t table_changed = PTHREAD_COND_INITIALIZER;
static struct entry *table[MAX_HANDLES];
static bool stopping;

/* --- arguments -------------------------------------------------------------------- */

/* Each reader returns NULL when the argument is good, else the response to send. */

static json_t *arg_int(json_t *args, const char *key, long long *out)
{
    json_t *value = json_object_get(args, key);
    if (value == NULL)
        return reply_error("missing argument '%s'", key);
    if (!json_is_integer(value))
        return reply_error("argument '%s' must be an integer", key);
    *out = json_integer_value(value);
    return NULL;
}

static json_t *arg_text(json_t *args, const char *key, const char **out)
{
    json_t *value = json_object_get(args, key);
    if (value == NULL)
        return reply_error("missing argument '%s'", key);
    if (!json_is_string(value))
        return reply_error("argument '%s' must be a string", key);
    *out = json_string_value(value);
    return NULL;
}

static json_t *arg_endpoint(json_t *args, struct sockaddr_in *out)
{
    const char *addr;
    long long port;
    json_t *problem = arg_text(args, "addr", &addr);
    if (problem == NULL)
        problem = arg_int(args, "port", &port);
    if (problem != NULL)
        return problem;
    memset(out, 0, sizeof(*out));
    out->sin_family = AF_INET;
    if (lwip_inet_pton(AF_INET, addr, &out->sin_addr) != 1)
        return reply_error("addr '%s' is not a dotted-quad IPv4 address", addr);
    if (port < 0 || port > 0xffff)
        return reply_error("port %lld out of range", port);
    out->sin_port = lwip_htons((u16_t)port);
    return NULL;
}

static json_t *arg_data(json_t *args, const char *key, unsigned char **bytes, size_t *length)
{
    const char *text;
    json_t *problem = arg_text(args, key, &text);
    if (problem != NULL)
        return problem;
    *bytes = base64_decode(text, length);
    if (*bytes == NULL)
        return reply_error("%s is not base64", key);
    return NULL;
}

/* A list of names from `table` as the OR of their bits; a name lwIP lacks is unsupported. */
static json_t *arg_names(json_t *args, const char *key, const struct name_bit *names,
                         bool optional, int *bits)
{
    json_t *list = json_object_get(args, key);
    *bits = 0;
    if (list == NULL && optional)
        return NULL;
    if (list == NULL)
        return reply_error("missing argument '%s'", key);
    if (!json_is_array(list))
        return reply_error("argument '%s' must be a list of names", key);
    size_t index;
    json_t *item;
    json_array_foreach(list, index, item) {
        if (!json_is_string(item))
            return reply_error("argument '%s' must be a list of names", key);
        const struct name_bit *known = find_name(names, json_string_value(item));
        if (known == NULL)
            return reply_unsupported("unknown %s name '%s'", key, json_string_value(item));
        if (known->missing != NULL)
            return reply_unsupported("%s", known->missing);
        *bits |= known->bit;
    }
    return NULL;
}

static json_t *endpoint_json(const struct sockaddr_in *address, socklen_t length)
{
    if (length < sizeof(*address) || address->sin_family != AF_INET)
        return json_pack("{s:n, s:n}", "addr", "port");
    char text[16];
    lwip_inet_ntop(AF_INET, &address->sin_addr, text, sizeof(text));
    return json_pack("{s:s, s:i}", "addr", text, "port", lwip_ntohs(address->sin_port));
}

/* --- the socket table --------------------------------------------------------------- */

static int add_socket(int handle, bool is_tcp)
{
    if (handle < 0 || handle >= MAX_HANDLES)
        return -1;
    struct entry *entry = calloc(1, sizeof(*entry));
    entry->is_tcp = is_tcp;
    pthread_mutex_init(&entry->op, NULL);
    pthread_mutex_lock(&table_lock);
    table[handle] = entry;
    pthread_mutex_unlock(&table_lock);
    return 0;
}

/* The entry of args.sock, counted as in use by a waiter when `waiting`. */
static json_t *take_socket(json_t *args, bool waiting, int *handle, struct entry **out)
{
    long long number;
    json_t *problem = arg_int(args, "sock", &number);
    if (problem != NULL)
        return problem;
    pthread_mutex_lock(&table_lock);
    struct entry *entry = number >= 0 && number < MAX_HANDLES ? table[number] : NULL;
    if (entry != NULL && waiting)
        entry->waiters++;
    pthread_mutex_unlock(&table_lock);
    if (entry == NULL)
        return reply_error("unknown socket handle %lld", number);
    *handle = (int)number;
    *out = entry;
    return NULL;
}

static void release_waiter(struct entry *entry)
{
    pthread_mutex_lock(&table_lock);
    entry->waiters--;
    pthread_cond_broadcast(&table_changed);
    pthread_mutex_unlock(&table_lock);
}

/* Removes a handle from the table once no waiter uses it; the caller closes it. */
static struct entry *remove_socket(int handle)
{
    pthread_mutex_lock(&table_lock);
    struct entry *entry = table[handle];
    if (entry != NULL) {
        table[handle] = NULL;
        entry->closing = true;
        while (entry->waiters > 0)
            pthread_cond_wait(&table_changed, &table_lock);
    }
    pthread_mutex_unlock(&table_lock);
    return entry;
}

static bool must_stop(struct entry *entry)
{
    pthread_mutex_lock(&table_lock);
    bool stop = stopping || entry->closing;
    pthread_mutex_unlock(&table_lock);
    return stop;
}

static json_t *stopped_reply(void)
{
    pthread_mutex_lock(&table_lock);
    bool end_of_input = stopping;
    pthread_mutex_unlock(&table_lock);
    if (end_of_input)
        return reply_error("the agent stopped at the end of input with this call waiting");
    return reply_errno(EBADF); /* the socket was closed while the call waited */
}

void stop_background_calls(void)
{
    pthread_mutex_lock(&table_lock);
    stopping = true;
    pthread_mutex_unlock(&table_lock);
}

void close_all_sockets(void)
{
    for (int handle = 0; handle < MAX_HANDLES; handle++) {
        struct entry *entry = remove_socket(handle);
        if (entry != NULL) {
            lwip_close(handle);
            pthread_mutex_destroy(&entry->op);
            free(entry);
        }
    }
}

static bool user_nonblocking(int handle)
{
    int flags = lwip_fcntl(handle, F_GETFL, 0);
    return flags >= 0 && (flags & O_NONBLOCK);
}

/* Waits one slice for `events` on the socket. */
static void wait_slice(int handle, short events)
{
    struct pollfd poller = {.fd = handle, .events = events, .revents = 0};
    lwip_poll(&poller, 1, WAIT_SLICE_MS);
}

/* --- calls -------------------------------------------------------------------------- */

struct call_context {
    json_t *args;
    bool background;
    int handle;          /* the socket, for calls on one */
    struct entry *entry; /* its entry */
    void *state;         /* what a retried call carries between tries */
};

static json_t *do_socket(struct call_context *context)
{
    const char *type;
    json_t *problem = arg_text(context->args, "type", &type);
    if (problem != NULL)
        return problem;
    bool is_tcp = strcmp(type, "tcp") == 0;
    if (!is_tcp && strcmp(type, "udp") != 0)
        return reply_unsupported("unknown type '%s'", type);
    int handle = lwip_socket(AF_INET, is_tcp ? SOCK_STREAM : SOCK_DGRAM, 0);
    if (handle < 0)
        return reply_errno(errno);
    if (add_socket(handle, is_tcp) < 0) {
        lwip_close(handle);
        return reply_error("socket number %d beyond the agent's table", handle);
    }
    return reply_result(json_integer(handle));
}

static json_t *do_bind(struct call_context *context)
{
    struct sockaddr_in address;
    json_t *problem = arg_endpoint(context->args, &address);
    if (problem != NULL)
        return problem;
    if (lwip_bind(context->handle, (struct sockaddr *)&address, sizeof(address)) < 0)
        return reply_errno(errno);
    return reply_result(json_null());
}

static json_t *do_connect(struct call_context *context)
{
    struct sockaddr_in address;
    json_t *problem = arg_endpoint(context->args, &address);
    if (problem != NULL)
        return problem;
    int handle = context->handle;
    if (!context->background || !context->entry->is_tcp || user_nonblocking(handle)) {
        if (lwip_connect(handle, (struct sockaddr *)&address, sizeof(address)) < 0)
            return reply_errno(errno);
        return reply_result(json_null());
    }
    /* Start the handshake without blocking, then wait for its end. */
    int flags = lwip_fcntl(handle, F_GETFL, 0) & O_NONBLOCK;
    lwip_fcntl(handle, F_SETFL, O_NONBLOCK);
    int started = lwip_connect(handle, (struct sockaddr *)&address, sizeof(address));
    int error = errno;
    lwip_fcntl(handle, F_SETFL, flags);
    if (started == 0)
        return reply_result(json_null());
    if (error != EINPROGRESS)
        return reply_errno(error);
    pthread_mutex_unlock(&context->entry->op);
    for (;;) {
        struct pollfd poller = {.fd = handle, .events = POLLOUT, .revents = 0};
        int ready = lwip_poll(&poller, 1, WAIT_SLICE_MS);
        if (must_stop(context->entry)) {
            pthread_mutex_lock(&context->entry->op);
            return stopped_reply();
        }
        if (ready > 0)
            break;
    }
    pthread_mutex_lock(&context->entry->op);
    int pending = 0;
    socklen_t length = sizeof(pending);
    if (lwip_getsockopt(handle, SOL_SOCKET, SO_ERROR, &pending, &length) < 0)
        return reply_errno(errno);
    if (pending != 0)
        return reply_errno(pending);
    return reply_result(json_null());
}

static json_t *do_listen(struct call_context *context)
{
    long long backlog;
    json_t *problem = arg_int(context->args, "backlog", &backlog);
    if (problem != NULL)
        return problem;
    if (lwip_listen(context->handle, (int)backlog) < 0)
        return reply_errno(errno);
    return reply_result(json_null());
}

/* A background call that may wait: tries `attempt` without blocking and waits for
 * `events` between tries. `attempt` returns NULL for "would block". */
typedef json_t *(*attempt_fn)(struct call_context *context, bool dont_wait);

static json_t *retry_until_ready(struct call_context *context, attempt_fn attempt, short events,
                                 bool caller_dont_wait)
{
    bool waits = context->background && !caller_dont_wait && !user_nonblocking(context->handle);
    if (!waits) {
        json_t *reply = attempt(context, caller_dont_wait);
        return reply != NULL ? reply : reply_errno(EAGAIN);
    }
    for (;;) {
        json_t *reply = attempt(context, true);
        if (reply != NULL)
            return reply;
        pthread_mutex_unlock(&context->entry->op);
        wait_slice(context->handle, events);
        pthread_mutex_lock(&context->entry->op);
        if (must_stop(context->entry))
            return stopped_reply();
    }
}

static json_t *attempt_accept(struct call_context *context, bool dont_wait)
{
    int handle = context->handle, flags = 0;
    if (dont_wait) {
        flags = lwip_fcntl(handle, F_GETFL, 0) & O_NONBLOCK;
        lwip_fcntl(handle, F_SETFL, O_NONBLOCK);
    }
    struct sockaddr_in peer;
    socklen_t length = sizeof(peer);
    int accepted = lwip_accept(handle, (struct sockaddr *)&peer, &length);
    int error = errno;
    if (dont_wait)
        lwip_fcntl(handle, F_SETFL, flags);
    if (accepted < 0)
        return error == EAGAIN || error == EWOULDBLOCK ? NULL : reply_errno(error);
    if (add_socket(accepted, true) < 0) {
        lwip_close(accepted);
        return reply_error("socket number %d beyond the agent's table", accepted);
    }
    json_t *result = endpoint_json(&peer, length);
    json_object_set_new(result, "sock", json_integer(accepted));
    return reply_result(result);
}

static json_t *do_accept(struct call_context *context)
{
    return retry_until_ready(context, attempt_accept, POLLIN, false);
}

/* Message flags of args.flags; MSG_MORE only on TCP (lwIP's UDP ignores it). */
static json_t *message_flags(struct call_context *context, int *flags)
{
    json_t *problem = arg_names(context->args, "flags", MESSAGE_FLAGS, true, flags);
    if (problem == NULL && (*flags & MSG_MORE) && !context->entry->is_tcp)
        problem = reply_unsupported("lwIP 2.1.3 ignores MSG_MORE on UDP (no corking)");
    return problem;
}

struct send_state {
    unsigned char *bytes;
    size_t length, sent;
    int flags;
    bool to;
    struct sockaddr_in address;
};

static json_t *attempt_send(struct call_context *context, bool dont_wait)
{
    struct send_state *state = context->state;
    int flags = state->flags | (dont_wait ? MSG_DONTWAIT : 0);
    ssize_t count;
    if (state->to)
        count = lwip_sendto(context->handle, state->bytes + state->sent, state->length - state->sent,
                            flags, (struct sockaddr *)&state->address, sizeof(state->address));
    else
        count = lwip_send(context->handle, state->bytes + state->sent, state->length - state->sent,
                          flags);
    if (count < 0) {
        int error = errno;
        if (error == EAGAIN && context->background && !(state->flags & MSG_DONTWAIT) &&
            !user_nonblocking(context->handle))
            return NULL;
        return state->sent > 0 ? reply_result(json_integer((json_int_t)state->sent)) : reply_errno(error);
    }
    state->sent += (size_t)count;
    /* A blocking TCP send returns once all of its data is in the send buffer. */
    if (state->sent < state->length && context->entry->is_tcp && dont_wait &&
        !(state->flags & MSG_DONTWAIT) && context->background && !user_nonblocking(context->handle))
        return NULL;
    return reply_result(json_integer((json_int_t)state->sent));
}

static json_t *do_send_common(struct call_context *context, bool to)
{
    struct send_state state = {.to = to};
    json_t *problem = message_flags(context, &state.flags);
    if (problem == NULL && to)
        problem = arg_endpoint(context->args, &state.address);
    if (problem == NULL)
        problem = arg_data(context->args, "data", &state.bytes, &state.length);
    if (problem != NULL)
        return problem;
    context->state = &state;
    json_t *reply = retry_until_ready(context, attempt_send, POLLOUT, state.flags & MSG_DONTWAIT);
    free(state.bytes);
    return reply;
}

static json_t *do_send(struct call_context *context)
{
    return do_send_common(context, false);
}

static json_t *do_sendto(struct call_context *context)
{
    return do_send_common(context, true);
}

enum recv_kind { RECV, RECVFROM, RECVMSG };

struct recv_state {
    enum recv_kind kind;
    unsigned char *buffer;
    size_t size;
    int flags;
};

static json_t *attempt_recv(struct call_context *context, bool dont_wait)
{
    struct recv_state *state = context->state;
    int flags = state->flags | (dont_wait ? MSG_DONTWAIT : 0);
    struct sockaddr_in peer;
    memset(&peer, 0, sizeof(peer));
    socklen_t peer_length = sizeof(peer);
    ssize_t count;
    int returned_flags = 0;
    if (state->kind == RECVMSG) {
        struct iovec vector = {.iov_base = state->buffer, .iov_len = state->size};
        struct msghdr message;
        memset(&message, 0, sizeof(message));
        message.msg_name = &peer;
        message.msg_namelen = sizeof(peer);
        message.msg_iov = &vector;
        message.msg_iovlen = 1;
        count = lwip_recvmsg(context->handle, &message, flags);
        peer_length = message.msg_namelen;
        returned_flags = message.msg_flags;
    } else if (state->kind == RECVFROM) {
        count = lwip_recvfrom(context->handle, state->buffer, state->size, flags,
                              (struct sockaddr *)&peer, &peer_length);
    } else {
        count = lwip_recv(context->handle, state->buffer, state->size, flags);
    }
    if (count < 0) {
        int error = errno;
        if (error == EAGAIN && dont_wait && !(state->flags & MSG_DONTWAIT))
            return NULL;
        return reply_errno(error);
    }
    size_t copied = (size_t)count < state->size ? (size_t)count : state->size;
    json_t *result = state->kind == RECV ? json_object() : endpoint_json(&peer, peer_length);
    json_object_set_new(result, "data", base64_json(state->buffer, copied));
    if (state->kind == RECVMSG) {
        json_object_set_new(result, "flags", bit_names(returned_flags, RETURNED_MESSAGE_FLAGS));
        json_object_set_new(result, "errqueue", json_null());
        json_object_set_new(result, "ancillary", json_object()); /* no IP_RECV* in lwIP */
    }
    return reply_result(result);
}

static json_t *do_recv_common(struct call_context *context, enum recv_kind kind)
{
    struct recv_state state = {.kind = kind};
    long long size;
    json_t *problem = message_flags(context, &state.flags);
    if (problem == NULL)
        problem = arg_int(context->args, "size", &size);
    if (problem != NULL)
        return problem;
    if (size < 0 || size > MAX_RECV_SIZE)
        return reply_error("size %lld out of range", size);
    state.size = (size_t)size;
    state.buffer = malloc(state.size + 1);
    context->state = &state;
    json_t *reply = retry_until_ready(context, attempt_recv, POLLIN, state.flags & MSG_DONTWAIT);
    free(state.buffer);
    return reply;
}

static json_t *do_recv(struct call_context *context)
{
    return do_recv_common(context, RECV);
}

static json_t *do_recvfrom(struct call_context *context)
{
    return do_recv_common(context, RECVFROM);
}

static json_t *do_recvmsg(struct call_context *context)
{
    return do_recv_common(context, RECVMSG);
}

static const struct socket_option *option_of(struct call_context *context, json_t **problem)
{
    const char *name;
    *problem = arg_text(context->args, "name", &name);
    if (*problem != NULL)
        return NULL;
    const struct socket_option *option = find_option(name);
    if (option == NULL)
        *problem = reply_unsupported("unknown socket option '%s'", name);
    else if (option->missing != NULL)
        *problem = reply_unsupported("%s", option->missing);
    return option;
}

/* lwIP answers ENOPROTOOPT for an option it was built without or that does not apply to
 * the socket's protocol (SO_LINGER on UDP, TCP options on UDP): the facility is absent. */
static json_t *option_failure(const struct socket_option *option, int error)
{
    if (error == ENOPROTOOPT)
        return reply_unsupported("lwIP answers ENOPROTOOPT to %s on this socket", option->name);
    return reply_errno(error);
}

static json_t *do_setsockopt(struct call_context *context)
{
    json_t *problem;
    const struct socket_option *option = option_of(context, &problem);
    if (problem != NULL)
        return problem;
    if (!option->settable)
        return reply_error("%s cannot be set", option->name);
    json_t *value = json_object_get(context->args, "value");
    int result;
    if (value == NULL)
        return reply_error("missing argument 'value'");
    if (option->kind == OPT_LINGER) {
        json_t *onoff = json_object_get(value, "onoff"), *seconds = json_object_get(value, "linger");
        if (!json_is_object(value) || !json_is_integer(onoff) || !json_is_integer(seconds))
            return reply_error("SO_LINGER value must be {onoff, linger}");
        struct linger linger = {(int)json_integer_value(onoff), (int)json_integer_value(seconds)};
        result = lwip_setsockopt(context->handle, option->level, option->number, &linger, sizeof(linger));
    } else {
        if (!json_is_integer(value) && !json_is_boolean(value))
            return reply_error("%s value must be an integer", option->name);
        int number = json_is_boolean(value) ? json_is_true(value) : (int)json_integer_value(value);
        result = lwip_setsockopt(context->handle, option->level, option->number, &number, sizeof(number));
    }
    if (result < 0)
        return option_failure(option, errno);
    return reply_result(json_null());
}

static json_t *do_getsockopt(struct call_context *context)
{
    json_t *problem;
    const struct socket_option *option = option_of(context, &problem);
    if (problem != NULL)
        return problem;
    if (option->kind == OPT_LINGER) {
        struct linger linger;
        socklen_t length = sizeof(linger);
        if (lwip_getsockopt(context->handle, option->level, option->number, &linger, &length) < 0)
            return option_failure(option, errno);
        return reply_result(json_pack("{s:i, s:i}", "onoff", linger.l_onoff, "linger", linger.l_linger));
    }
    int number = 0;
    socklen_t length = sizeof(number);
    if (lwip_getsockopt(context->handle, option->level, option->number, &number, &length) < 0)
        return option_failure(option, errno);
    switch (option->kind) {
    case OPT_ERRNO_NAME:
        return reply_result(number ? json_string(errno_name(number)) : json_null());
    case OPT_SOCKET_TYPE:
        return reply_result(json_string(number == SOCK_STREAM ? "tcp"
                                        : number == SOCK_DGRAM ? "udp" : "other"));
    case OPT_BOOL:
        return reply_result(json_integer(number != 0));
    default:
        return reply_result(json_integer(number));
    }
}

static json_t *do_ioctl(struct call_context *context)
{
    const char *request;
    json_t *problem = arg_text(context->args, "request", &request);
    if (problem != NULL)
        return problem;
    if (strcmp(request, "SIOCOUTQ") == 0 || strcmp(request, "SIOCATMARK") == 0)
        return reply_unsupported("lwip_ioctl knows FIONREAD and FIONBIO only, not %s", request);
    if (strcmp(request, "FIONREAD") != 0)
        return reply_unsupported("unknown ioctl request '%s'", request);
    int count = 0;
    if (lwip_ioctl(context->handle, FIONREAD, &count) < 0)
        return reply_errno(errno);
    return reply_result(json_integer(count));
}

static const struct name_bit FILE_STATUS_FLAGS[] = {
    {"O_NONBLOCK", O_NONBLOCK, NULL},
    {NULL, 0, NULL},
};

static json_t *do_fcntl(struct call_context *context)
{
    const char *command;
    json_t *problem = arg_text(context->args, "cmd", &command);
    if (problem != NULL)
        return problem;
    int current = lwip_fcntl(context->handle, F_GETFL, 0);
    if (current < 0)
        return reply_errno(errno);
    if (strcmp(command, "F_GETFL") == 0)
        return reply_result(bit_names(current, FILE_STATUS_FLAGS));
    if (strcmp(command, "F_SETFL") != 0)
        return reply_unsupported("unknown fcntl cmd '%s'", command);
    int wanted;
    problem = arg_names(context->args, "flags", FILE_STATUS_FLAGS, false, &wanted);
    if (problem != NULL)
        return problem;
    /* O_NONBLOCK is the only file status flag lwIP has. */
    if (lwip_fcntl(context->handle, F_SETFL, wanted) < 0)
        return reply_errno(errno);
    return reply_result(json_null());
}

static json_t *do_shutdown(struct call_context *context)
{
    const char *how;
    json_t *problem = arg_text(context->args, "how", &how);
    if (problem != NULL)
        return problem;
    int number = strcmp(how, "SHUT_RD") == 0 ? SHUT_RD
                 : strcmp(how, "SHUT_WR") == 0 ? SHUT_WR
                 : strcmp(how, "SHUT_RDWR") == 0 ? SHUT_RDWR : -1;
    if (number < 0)
        return reply_unsupported("unknown how '%s'", how);
    if (lwip_shutdown(context->handle, number) < 0)
        return reply_errno(errno);
    return reply_result(json_null());
}

static json_t *do_poll(struct call_context *context)
{
    int events;
    long long timeout_ms;
    json_t *problem = arg_names(context->args, "events", POLL_EVENTS, false, &events);
    if (problem == NULL)
        problem = arg_int(context->args, "timeout_ms", &timeout_ms);
    if (problem != NULL)
        return problem;
    struct pollfd poller = {.fd = context->handle, .events = (short)events, .revents = 0};
    if (!context->background) {
        if (lwip_poll(&poller, 1, (int)timeout_ms) < 0)
            return reply_errno(errno);
        return reply_result(bit_names(poller.revents, POLL_EVENTS));
    }
    /* In the background: in slices, so that a close can stop it. */
    long long waited = 0;
    pthread_mutex_unlock(&context->entry->op);
    for (;;) {
        long long slice = timeout_ms < 0 ? WAIT_SLICE_MS
                          : timeout_ms - waited < WAIT_SLICE_MS ? timeout_ms - waited : WAIT_SLICE_MS;
        int ready = lwip_poll(&poller, 1, (int)slice);
        waited += slice;
        if (ready != 0 || (timeout_ms >= 0 && waited >= timeout_ms))
            break;
        if (must_stop(context->entry)) {
            pthread_mutex_lock(&context->entry->op);
            return stopped_reply();
        }
    }
    pthread_mutex_lock(&context->entry->op);
    return reply_result(bit_names(poller.revents, POLL_EVENTS));
}

static json_t *do_name(struct call_context *context, bool peer)
{
    struct sockaddr_in address;
    socklen_t length = sizeof(address);
    int result = peer ? lwip_getpeername(context->handle, (struct sockaddr *)&address, &length)
                      : lwip_getsockname(context->handle, (struct sockaddr *)&address, &length);
    if (result < 0)
        return reply_errno(errno);
    return reply_result(endpoint_json(&address, length));
}

static json_t *do_getsockname(struct call_context *context)
{
    return do_name(context, false);
}

static json_t *do_getpeername(struct call_context *context)
{
    return do_name(context, true);
}

static json_t *do_hello(struct call_context *context)
{
    (void)context;
    return reply_result(json_pack("{s:s, s:i, s:o, s:o, s:o}", "agent", AGENT_NAME, "protocol",
                                  PROTOCOL_VERSION, "calls", call_names(), "facts", build_facts(),
                                  "settings", stack_settings()));
}

static json_t *describe_socket(int handle, const struct entry *entry)
{
    json_t *description = json_pack("{s:i, s:s}", "sock", handle, "type", entry->is_tcp ? "tcp" : "udp");
    struct sockaddr_in address;
    socklen_t length = sizeof(address);
    json_object_set_new(description, "local",
                        lwip_getsockname(handle, (struct sockaddr *)&address, &length) == 0
                            ? endpoint_json(&address, length) : json_null());
    length = sizeof(address);
    json_object_set_new(description, "peer",
                        lwip_getpeername(handle, (struct sockaddr *)&address, &length) == 0
                            ? endpoint_json(&address, length) : json_null());
    if (entry->is_tcp)
        json_object_set_new(description, "state", tcp_state_of(handle));
    return description;
}

static json_t *do_snapshot(struct call_context *context)
{
    (void)context;
    json_t *sockets = json_array();
    pthread_mutex_lock(&table_lock);
    for (int handle = 0; handle < MAX_HANDLES; handle++)
        if (table[handle] != NULL)
            json_array_append_new(sockets, describe_socket(handle, table[handle]));
    pthread_mutex_unlock(&table_lock);
    json_t *settings = stack_settings();
    json_object_set_new(settings, "build", build_facts());
    return reply_result(json_pack("{s:o, s:o}", "sockets", sockets, "settings", settings));
}

static json_t *do_close(struct call_context *context);

struct call {
    const char *name;
    json_t *(*perform)(struct call_context *context);
    bool on_socket; /* takes args.sock */
};

static const struct call CALLS[] = {
    {"hello", do_hello, false},
    {"socket", do_socket, false},
    {"bind", do_bind, true},
    {"connect", do_connect, true},
    {"listen", do_listen, true},
    {"accept", do_accept, true},
    {"send", do_send, true},
    {"sendto", do_sendto, true},
    {"recv", do_recv, true},
    {"recvfrom", do_recvfrom, true},
    {"recvmsg", do_recvmsg, true},
    {"setsockopt", do_setsockopt, true},
    {"getsockopt", do_getsockopt, true},
    {"ioctl", do_ioctl, true},
    {"fcntl", do_fcntl, true},
    {"shutdown", do_shutdown, true},
    {"close", do_close, false},
    {"poll", do_poll, true},
    {"getsockname", do_getsockname, true},
    {"getpeername", do_getpeername, true},
    {"snapshot", do_snapshot, false},
    {NULL, NULL, false},
};

static json_t *do_close(struct call_context *context)
{
    long long number;
    json_t *problem = arg_int(context->args, "sock", &number);
    if (problem != NULL)
        return problem;
    struct entry *entry = number >= 0 && number < MAX_HANDLES ? remove_socket((int)number) : NULL;
    if (entry == NULL)
        return reply_error("unknown socket handle %lld", number);
    int result = lwip_close((int)number), error = errno;
    pthread_mutex_destroy(&entry->op);
    free(entry);
    return result < 0 ? reply_errno(error) : reply_result(json_null());
}

json_t *call_names(void)
{
    json_t *names = json_array();
    for (const struct call *call = CALLS; call->name != NULL; call++)
        json_array_append_new(names, json_string(call->name));
    return names;
}

json_t *perform_call(const char *name, json_t *args, bool background)
{
    const struct call *call = CALLS;
    while (call->name != NULL && strcmp(call->name, name) != 0)
        call++;
    if (call->name == NULL)
        return reply_unsupported("unknown call '%s'", name);
    struct call_context context = {.args = args, .background = background, .handle = -1, .entry = NULL};
    if (!call->on_socket)
        return call->perform(&context);
    json_t *problem = take_socket(args, true, &context.handle, &context.entry);
    if (problem != NULL)
        return problem;
    pthread_mutex_lock(&context.entry->op);
    json_t *reply = call->perform(&context);
    pthread_mutex_unlock(&context.entry->op);
    release_waiter(context.entry);
    return reply;
}
