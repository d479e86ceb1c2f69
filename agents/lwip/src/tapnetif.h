/* The agent's TAP netif (tapnetif.c): tapif's behaviour with PBUF_RAM receive buffers. */
#ifndef CF_LWIP_TAPNETIF_H
#define CF_LWIP_TAPNETIF_H

#include "lwip/netif.h"

/* Opens CF_TAP as tapif does, or adopts `inherited_fd` (>= 0). Returns 0 or an errno. */
int tap_open(const char *ifname, int inherited_fd);
/* netif_add's init function; the TAP must be open. */
err_t tap_netif_init(struct netif *netif);

#endif
