/* lwIP on the TAP device, configured from the environment the tester sets:
 *   CF_TAP       TAP interface name in the agent's namespace (required)
 *   CF_DUT_MAC   the DUT's MAC, aa:bb:cc:dd:ee:ff (required)
 *   CF_DUT_ADDR  the DUT's IPv4 address (required)
 *   CF_PREFIX    prefix length of the link (default 24)
 *   CF_GATEWAY   the default gateway (optional)
 *   CF_MTU       the link MTU (default 1500)
 *   CF_ROUTES    "NET/LEN via GW[, NET/LEN via GW ...]" (optional; ';' also separates)
 *   CF_TAP_FD    an open descriptor of the TAP device, inherited (optional: else the agent
 *                opens CF_TAP itself, as tapif does)
 *   CF_LWIP_NETIF  "tapif": Debian's tapif instead of the agent's netif (see tapnetif.c)
 * lwIP has one netif and one gateway per netif: every off-link destination goes to the
 * gateway. A route whose gateway is CF_GATEWAY (or, without CF_GATEWAY, the gateway of the
 * first route) is expressed by it; a route through another gateway cannot be, and is
 * reported in `routes_not_applied`. */
#include "agent.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lwip/opt.h"
#include "lwip/api.h"
#include "lwip/etharp.h"
#include "lwip/init.h"
#include "lwip/ip4_addr.h"
#include "lwip/netif.h"
#include "lwip/priv/sockets_priv.h"
#include "lwip/priv/tcp_priv.h"
#include "lwip/sys.h"
#include "lwip/tcpip.h"
#include "netif/tapif.h"
#include "tapnetif.h"

static struct netif tap_netif;
static json_t *applied; /* the configuration as applied */

static const char *env(const char *name, const char *fallback)
{
    const char *value = getenv(name);
    return value != NULL && *value ? value : fallback;
}

static bool parse_mac(const char *text, u8_t mac[6])
{
    unsigned int octets[6];
    char tail;
    if (sscanf(text, "%x:%x:%x:%x:%x:%x%c", &octets[0], &octets[1], &octets[2], &octets[3],
               &octets[4], &octets[5], &tail) != 6)
        return false;
    for (int i = 0; i < 6; i++) {
        if (octets[i] > 0xff)
            return false;
        mac[i] = (u8_t)octets[i];
    }
    return true;
}

static bool parse_int(const char *text, int low, int high, int *out)
{
    char *end;
    long value = strtol(text, &end, 10);
    if (*text == '\0' || *end != '\0' || value < low || value > high)
        return false;
    *out = (int)value;
    return true;
}

/* Applies CF_ROUTES to the one gateway lwIP has: returns false on a malformed route. */
static bool apply_routes(const char *text, ip4_addr_t *gateway, bool *have_gateway,
                         json_t *routes, json_t *not_applied)
{
    char *copy = strdup(text);
    char *save = NULL;
    bool ok = true;
    for (char *item = strtok_r(copy, ",;", &save); item != NULL; item = strtok_r(NULL, ",;", &save)) {
        while (*item == ' ')
            item++;
        if (*item == '\0')
            continue;
        char network[64], via[8], next_hop[64];
        ip4_addr_t hop;
        if (sscanf(item, "%63s %7s %63s", network, via, next_hop) != 3 || strcmp(via, "via") != 0 ||
            !ip4addr_aton(next_hop, &hop)) {
            fprintf(stderr, "cf-lwip-agent: CF_ROUTES: cannot read %s (want NET/LEN via GW)\n", item);
            ok = false;
            break;
        }
        json_t *route = json_pack("{s:s, s:s}", "destination", network, "gateway", next_hop);
        if (!*have_gateway) {
            *gateway = hop;
            *have_gateway = true;
        }
        if (ip4_addr_cmp(&hop, gateway)) {
            json_array_append_new(routes, route);
        } else {
            fprintf(stderr, "cf-lwip-agent: route %s via %s not applied: lwIP has one gateway\n",
                    network, next_hop);
            json_array_append_new(not_applied, route);
        }
    }
    free(copy);
    return ok;
}

static void tcpip_ready(void *arg)
{
    sys_sem_signal((sys_sem_t *)arg);
}

bool start_stack(void)
{
    const char *tap = env("CF_TAP", NULL);
    const char *mac_text = env("CF_DUT_MAC", NULL);
    const char *address_text = env("CF_DUT_ADDR", NULL);
    const char *prefix_text = env("CF_PREFIX", "24");
    const char *gateway_text = env("CF_GATEWAY", NULL);
    const char *mtu_text = env("CF_MTU", "1500");
    const char *routes_text = env("CF_ROUTES", "");
    u8_t mac[6];
    ip4_addr_t address, netmask, gateway;
    int prefix, mtu;
    bool have_gateway = gateway_text != NULL;

    if (tap == NULL || mac_text == NULL || address_text == NULL) {
        fprintf(stderr, "cf-lwip-agent: CF_TAP, CF_DUT_MAC and CF_DUT_ADDR must be set\n");
        return false;
    }
    if (strlen(tap) >= 16 || !parse_mac(mac_text, mac) || !ip4addr_aton(address_text, &address) ||
        !parse_int(prefix_text, 0, 32, &prefix) || !parse_int(mtu_text, 576, 65535, &mtu) ||
        (have_gateway && !ip4addr_aton(gateway_text, &gateway))) {
        fprintf(stderr, "cf-lwip-agent: bad CF_TAP, CF_DUT_MAC, CF_DUT_ADDR, CF_PREFIX, CF_MTU "
                        "or CF_GATEWAY\n");
        return false;
    }
    ip4_addr_set_u32(&netmask, prefix ? lwip_htonl(0xffffffffUL << (32 - prefix)) : 0);
    if (!have_gateway)
        ip4_addr_set_zero(&gateway);
    json_t *routes = json_array(), *not_applied = json_array();
    if (!apply_routes(routes_text, &gateway, &have_gateway, routes, not_applied)) {
        json_decref(routes);
        json_decref(not_applied);
        return false;
    }

    bool use_tapif = strcmp(env("CF_LWIP_NETIF", ""), "tapif") == 0;
    int inherited_fd = -1;
    const char *fd_text = env("CF_TAP_FD", NULL);
    if (use_tapif) {
        /* tapif opens /dev/net/tun and attaches to this name (creating the device if it
         * does not exist); with PRECONFIGURED_TAPIF set it does not run ifconfig on it. */
        setenv("PRECONFIGURED_TAPIF", tap, 1);
    } else {
        if (fd_text != NULL && !parse_int(fd_text, 0, 1 << 20, &inherited_fd)) {
            fprintf(stderr, "cf-lwip-agent: bad CF_TAP_FD\n");
            return false;
        }
        int problem = tap_open(tap, inherited_fd);
        if (problem) {
            fprintf(stderr, "cf-lwip-agent: cannot attach to TAP device %s: %s\n", tap, strerror(problem));
            return false;
        }
    }

    sys_sem_t ready;
    if (sys_sem_new(&ready, 0) != ERR_OK)
        return false;
    tcpip_init(tcpip_ready, &ready);
    sys_sem_wait(&ready);
    sys_sem_free(&ready);

    LOCK_TCPIP_CORE();
    struct netif *added = netif_add(&tap_netif, &address, &netmask, &gateway, NULL,
                                    use_tapif ? tapif_init : tap_netif_init, tcpip_input);
    if (added != NULL) {
        memcpy(tap_netif.hwaddr, mac, 6);
        tap_netif.hwaddr_len = 6;
        tap_netif.mtu = (u16_t)mtu;
        netif_set_default(&tap_netif);
    }
    UNLOCK_TCPIP_CORE();
    if (added == NULL) {
        fprintf(stderr, "cf-lwip-agent: netif_add failed\n");
        return false;
    }
    int problem = tapdev_bring_up(tap, mtu);
    if (problem) {
        fprintf(stderr, "cf-lwip-agent: cannot bring %s up: %s\n", tap, strerror(problem));
        return false;
    }
    LOCK_TCPIP_CORE();
    netif_set_up(&tap_netif);
    UNLOCK_TCPIP_CORE();

    char gateway_buffer[16];
    applied = json_pack("{s:s, s:s, s:s, s:s, s:i, s:o, s:i, s:o, s:o, s:s}",
                        "netif", use_tapif ? "tapif (Debian liblwip)" : "cf-lwip-agent tapnetif (tapif with PBUF_RAM)",
                        "tap", tap, "mac", mac_text, "address", address_text, "prefix", prefix,
                        "gateway", have_gateway ? json_string(ip4addr_ntoa_r(&gateway, gateway_buffer,
                                                                             sizeof(gateway_buffer)))
                                                : json_null(),
                        "mtu", mtu, "routes", routes, "routes_not_applied", not_applied,
                        "routing", "one netif: on-link by prefix, every other destination to the gateway");
    fprintf(stderr, "cf-lwip-agent: lwIP %s on %s, %s/%d, mtu %d\n", LWIP_VERSION_STRING, tap,
            address_text, prefix, mtu);
    return true;
}

json_t *stack_settings(void)
{
    return applied != NULL ? json_deep_copy(applied) : json_object();
}

/* enum tcp_state of lwip/tcpbase.h, in order. */
static const char *const TCP_STATES[] = {
    "CLOSED", "LISTEN", "SYN_SENT", "SYN_RCVD", "ESTABLISHED", "FIN_WAIT_1",
    "FIN_WAIT_2", "CLOSE_WAIT", "CLOSING", "LAST_ACK", "TIME_WAIT",
};

json_t *tcp_state_of(int handle)
{
    json_t *state = json_null();
    LOCK_TCPIP_CORE();
    struct lwip_sock *sock = lwip_socket_dbg_get_socket(handle);
    if (sock != NULL && sock->conn != NULL && NETCONNTYPE_GROUP(sock->conn->type) == NETCONN_TCP) {
        struct tcp_pcb *pcb = sock->conn->pcb.tcp;
        if (pcb == NULL)
            state = json_string("CLOSED");
        else if ((unsigned)pcb->state < sizeof(TCP_STATES) / sizeof(TCP_STATES[0]))
            state = json_string(TCP_STATES[pcb->state]);
    }
    UNLOCK_TCPIP_CORE();
    return state;
}
