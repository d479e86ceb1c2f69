/* Names of the agent protocol mapped to the values lwIP was built with. Debian builds
 * lwIP with LWIP_SOCKET_EXTERNAL_HEADERS, so its sockets API takes glibc's constants
 * (SOL_SOCKET, MSG_DONTWAIT, POLLIN, O_NONBLOCK, ...) and sets glibc's errno. */
#define _GNU_SOURCE
#include "agent.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "lwip/opt.h"
#include "lwip/sockets.h"

const char *errno_name(int number)
{
    /* Where errno.h gives one number two names, the protocol names the first. */
    if (number == EAGAIN)
        return "EAGAIN";
    if (number == EOPNOTSUPP)
        return "EOPNOTSUPP";
    if (number == EDEADLK)
        return "EDEADLK";
    const char *name = strerrorname_np(number);
    if (name != NULL)
        return name;
    static __thread char unknown[32];
    snprintf(unknown, sizeof(unknown), "ERRNO_%d", number);
    return unknown;
}

/* lwip/sockets.h marks MSG_WAITALL, MSG_OOB and MSG_NOSIGNAL "Unimplemented"; the
 * agent leaves MSG_NOSIGNAL out itself since lwIP raises no signal. */
const struct name_bit MESSAGE_FLAGS[] = {
    {"MSG_DONTWAIT", MSG_DONTWAIT, NULL},
    {"MSG_PEEK", MSG_PEEK, NULL},
    {"MSG_MORE", MSG_MORE, NULL}, /* TCP only: checked in calls.c */
    {"MSG_NOSIGNAL", 0, NULL},
    {"MSG_TRUNC", 0, "lwIP 2.1.3's recv calls have no MSG_TRUNC (full datagram length)"},
    {"MSG_ERRQUEUE", 0, "lwIP 2.1.3 has no error queue (IP_RECVERR)"},
    {"MSG_WAITALL", 0, "lwIP 2.1.3 does not implement MSG_WAITALL (lwip/sockets.h)"},
    {"MSG_OOB", 0, "lwIP 2.1.3 does not implement MSG_OOB (urgent data) (lwip/sockets.h)"},
    {NULL, 0, NULL},
};

const struct name_bit RETURNED_MESSAGE_FLAGS[] = {
    {"MSG_TRUNC", MSG_TRUNC, NULL},
    {"MSG_CTRUNC", MSG_CTRUNC, NULL},
    {NULL, 0, NULL},
};

const struct name_bit POLL_EVENTS[] = {
    {"POLLIN", POLLIN, NULL},
    {"POLLPRI", POLLPRI, NULL},
    {"POLLOUT", POLLOUT, NULL},
    {"POLLERR", POLLERR, NULL},
    {"POLLHUP", POLLHUP, NULL},
    {"POLLNVAL", POLLNVAL, NULL},
    {"POLLRDNORM", POLLRDNORM, NULL},
    {"POLLRDBAND", POLLRDBAND, NULL},
    {"POLLWRNORM", POLLWRNORM, NULL},
    {"POLLWRBAND", POLLWRBAND, NULL},
    {"POLLMSG", 0, "lwip_poll has no POLLMSG"},
    {"POLLRDHUP", 0, "lwip_poll has no POLLRDHUP"},
    {NULL, 0, NULL},
};

const struct name_bit *find_name(const struct name_bit *table, const char *name)
{
    for (; table->name != NULL; table++)
        if (strcmp(table->name, name) == 0)
            return table;
    return NULL;
}

json_t *bit_names(int value, const struct name_bit *table)
{
    json_t *names = json_array();
    for (; table->name != NULL; table++)
        if (table->bit && (value & table->bit) == table->bit)
            json_array_append_new(names, json_string(table->name));
    return names;
}

#define NO(why) "lwIP 2.1.3's sockets API has no " why

/* What lwip_setsockopt/lwip_getsockopt handle (src/api/sockets.c): SO_REUSEADDR
 * (SO_REUSE), SO_KEEPALIVE, SO_BROADCAST (to no effect, below), SO_RCVBUF
 * (LWIP_SO_RCVBUF), SO_LINGER (LWIP_SO_LINGER), SO_ERROR, SO_TYPE, IP_TTL, IP_TOS, TCP_NODELAY and the keep-alive
 * times (LWIP_TCP_KEEPALIVE, in seconds). The rest is absent from lwIP. */
static const struct socket_option OPTIONS[] = {
    {"SO_REUSEADDR", SOL_SOCKET, SO_REUSEADDR, OPT_BOOL, true, NULL},
    {"SO_KEEPALIVE", SOL_SOCKET, SO_KEEPALIVE, OPT_BOOL, true, NULL},
    {"SO_RCVBUF", SOL_SOCKET, SO_RCVBUF, OPT_INT, true, NULL},
    {"SO_SNDBUF", SOL_SOCKET, SO_SNDBUF, OPT_INT, true, NO("SO_SNDBUF (TCP_SND_BUF is fixed)")},
    /* lwip_setsockopt takes SO_BROADCAST, but only IP_SOF_BROADCAST makes udp_sendto
     * read it, and Debian builds lwIP without: broadcasts go out with or without it. */
    {"SO_BROADCAST", SOL_SOCKET, SO_BROADCAST, OPT_BOOL, true,
     NO("SO_BROADCAST as a permission (Debian builds it with IP_SOF_BROADCAST 0)")},
    {"SO_ERROR", SOL_SOCKET, SO_ERROR, OPT_ERRNO_NAME, false, NULL},
    {"SO_TYPE", SOL_SOCKET, SO_TYPE, OPT_SOCKET_TYPE, false, NULL},
    {"SO_LINGER", SOL_SOCKET, SO_LINGER, OPT_LINGER, true, NULL},
    {"SO_OOBINLINE", SOL_SOCKET, SO_OOBINLINE, OPT_INT, true, NO("SO_OOBINLINE (no urgent data)")},
    {"IP_TTL", IPPROTO_IP, IP_TTL, OPT_INT, true, NULL},
    {"IP_TOS", IPPROTO_IP, IP_TOS, OPT_INT, true, NULL},
    {"IP_RECVERR", IPPROTO_IP, 0, OPT_INT, true, NO("IP_RECVERR (no error queue)")},
    {"IP_OPTIONS", IPPROTO_IP, 0, OPT_INT, true, NO("IP_OPTIONS (it sends no IP options)")},
    {"IP_RECVOPTS", IPPROTO_IP, 0, OPT_INT, true, NO("IP_RECVOPTS (no ancillary data)")},
    {"IP_RECVTOS", IPPROTO_IP, 0, OPT_INT, true, NO("IP_RECVTOS (no ancillary data)")},
    {"IP_PKTINFO", IPPROTO_IP, 0, OPT_INT, true,
     NO("IP_PKTINFO here (Debian builds it with LWIP_NETBUF_RECVINFO 0)")},
    {"IP_MTU_DISCOVER", IPPROTO_IP, 0, OPT_INT, true,
     NO("IP_MTU_DISCOVER (no path MTU discovery)")},
    {"IP_MTU", IPPROTO_IP, 0, OPT_INT, false, NO("IP_MTU (no path MTU)")},
    {"TCP_NODELAY", IPPROTO_TCP, TCP_NODELAY, OPT_BOOL, true, NULL},
    {"TCP_MAXSEG", IPPROTO_TCP, 0, OPT_INT, true, NO("TCP_MAXSEG (TCP_MSS is fixed at build time)")},
    {"TCP_KEEPIDLE", IPPROTO_TCP, TCP_KEEPIDLE, OPT_INT, true, NULL},
    {"TCP_KEEPINTVL", IPPROTO_TCP, TCP_KEEPINTVL, OPT_INT, true, NULL},
    {"TCP_KEEPCNT", IPPROTO_TCP, TCP_KEEPCNT, OPT_INT, true, NULL},
    {"TCP_USER_TIMEOUT", IPPROTO_TCP, 0, OPT_INT, true,
     NO("TCP_USER_TIMEOUT (R2 is TCP_MAXRTX retransmissions)")},
    {"UDP_CORK", IPPROTO_UDP, 0, OPT_INT, true, NO("UDP_CORK")},
    {NULL, 0, 0, OPT_INT, false, NULL},
};

const struct socket_option *find_option(const char *name)
{
    for (const struct socket_option *option = OPTIONS; option->name != NULL; option++)
        if (strcmp(option->name, name) == 0)
            return option;
    return NULL;
}
