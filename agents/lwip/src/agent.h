/* The lwIP agent: lwIP 2.1.3 (Debian's liblwip) on a TAP device, driven by the agent
 * protocol of docs/agent-protocol.md on stdin/stdout. */
#ifndef CF_LWIP_AGENT_H
#define CF_LWIP_AGENT_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#define AGENT_NAME "lwip"
#define PROTOCOL_VERSION 1

/* --- responses (main.c) ------------------------------------------------------------- */

/* Each call answers one of these objects; main.c adds the id. */
json_t *reply_result(json_t *value);             /* {"result": value}, steals value */
json_t *reply_errno(int number);                 /* {"errno": NAME} */
json_t *reply_unsupported(const char *fmt, ...); /* {"unsupported": why} */
json_t *reply_error(const char *fmt, ...);       /* {"error": why} */

/* --- base64 (base64.c) -------------------------------------------------------------- */

json_t *base64_json(const unsigned char *bytes, size_t length);
unsigned char *base64_decode(const char *text, size_t *length); /* NULL: not base64 */

/* --- names (names.c) ---------------------------------------------------------------- */

struct name_bit {
    const char *name;
    int bit;
    const char *missing; /* non-NULL: lwIP lacks it, and this says why */
};

const char *errno_name(int number);
extern const struct name_bit MESSAGE_FLAGS[];
extern const struct name_bit RETURNED_MESSAGE_FLAGS[];
extern const struct name_bit POLL_EVENTS[];
const struct name_bit *find_name(const struct name_bit *table, const char *name);
json_t *bit_names(int value, const struct name_bit *table);

/* OPT_BOOL: lwIP answers the option's flag bit (SO_KEEPALIVE gives 8); sent as 0 or 1. */
enum option_kind { OPT_INT, OPT_BOOL, OPT_ERRNO_NAME, OPT_SOCKET_TYPE, OPT_LINGER };

struct socket_option {
    const char *name;
    int level;
    int number;
    enum option_kind kind;
    bool settable;
    const char *missing; /* non-NULL: lwIP 2.1.3's sockets API lacks it, and why */
};

const struct socket_option *find_option(const char *name);

/* --- the socket table and the calls (calls.c) --------------------------------------- */

/* Performs one call. `background`: a call that may block waits in slices so that a close
 * of its socket or the end of input can stop it. */
json_t *perform_call(const char *call, json_t *args, bool background);
json_t *call_names(void);
void stop_background_calls(void); /* end of input: wakes every waiting call */
void close_all_sockets(void);

/* --- the stack (stack.c) ------------------------------------------------------------ */

/* Reads the CF_* environment, starts lwIP's tcpip thread and the tapif netif. Returns
 * false (after saying why on stderr) when the configuration is unusable. */
bool start_stack(void);
json_t *stack_settings(void); /* the configuration as applied, for hello and snapshot */
json_t *tcp_state_of(int handle); /* lwIP's TCP state name of a socket, or null */

/* --- the build options (facts.c) ---------------------------------------------------- */

json_t *build_facts(void);

/* --- the Linux side of the TAP device (tapdev.c: no lwIP headers there) ------------- */

/* Brings the named interface up with `mtu` (0: leave it). Returns 0 or an errno. */
int tapdev_bring_up(const char *ifname, int mtu);

#endif
