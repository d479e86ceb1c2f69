/* The agent's TAP netif: the unix port's tapif, with one change. Debian's liblwip 2.1.3
 * does not agree with itself on the size of a PBUF_POOL buffer: the pool (memp.c)
 * hands out 592-octet buffers (what opt.h's default TCP_MSS of 536 gives), while
 * pbuf_alloc fills them as if they held the 1460 of lwipopts.h. tapif reads each
 * frame into PBUF_POOL pbufs, so every frame longer than about 600 octets overruns
 * the heap ("malloc(): corrupted top size"; valgrind: an invalid write in pbuf_take
 * from tapif's thread). This netif does what tapif does but takes PBUF_RAM pbufs,
 * sized to the frame. CF_LWIP_NETIF=tapif selects Debian's tapif instead (to show the
 * fault).
 *
 * The device is opened as tapif opens it (/dev/net/tun, TUNSETIFF with IFF_TAP |
 * IFF_NO_PI on CF_TAP), or taken already open from CF_TAP_FD. */
#include "agent.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/if_tun.h>
#include <net/if.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "lwip/opt.h"
#include "lwip/etharp.h"
#include "lwip/ethip6.h"
#include "lwip/netif.h"
#include "lwip/pbuf.h"
#include "tapnetif.h"

struct tap_state {
    int fd;
    struct netif *netif;
};

static struct tap_state tap;

int tap_open(const char *ifname, int inherited_fd)
{
    if (inherited_fd >= 0) {
        tap.fd = inherited_fd;
        return 0;
    }
    int fd = open("/dev/net/tun", O_RDWR | O_CLOEXEC);
    if (fd < 0)
        return errno;
    struct ifreq request;
    memset(&request, 0, sizeof(request));
    strncpy(request.ifr_name, ifname, IFNAMSIZ - 1);
    request.ifr_flags = IFF_TAP | IFF_NO_PI;
    if (ioctl(fd, TUNSETIFF, &request) < 0) {
        int problem = errno;
        close(fd);
        return problem;
    }
    tap.fd = fd;
    return 0;
}

static err_t tap_output(struct netif *netif, struct pbuf *p)
{
    (void)netif;
    unsigned char stack_buffer[2048];
    unsigned char *frame = p->tot_len <= sizeof(stack_buffer) ? stack_buffer : malloc(p->tot_len);
    if (frame == NULL)
        return ERR_MEM;
    u16_t length = pbuf_copy_partial(p, frame, p->tot_len, 0);
    ssize_t written = write(tap.fd, frame, length);
    if (frame != stack_buffer)
        free(frame);
    if (written != (ssize_t)length) {
        perror("cf-lwip-agent: TAP write");
        return ERR_IF;
    }
    return ERR_OK;
}

/* Reads frames and hands them to the tcpip thread (netif->input is tcpip_input). */
static void *tap_reader(void *arg)
{
    (void)arg;
    static unsigned char frame[65536];
    for (;;) {
        struct pollfd poller = {.fd = tap.fd, .events = POLLIN, .revents = 0};
        if (poll(&poller, 1, -1) < 0 && errno != EINTR)
            break;
        ssize_t length = read(tap.fd, frame, sizeof(frame));
        if (length < 0) {
            if (errno == EAGAIN || errno == EINTR)
                continue;
            perror("cf-lwip-agent: TAP read");
            usleep(10000); /* the device went down; it may come back */
            continue;
        }
        if (length == 0)
            continue;
        struct pbuf *p = pbuf_alloc(PBUF_RAW, (u16_t)length, PBUF_RAM);
        if (p == NULL)
            continue; /* out of memory: dropped, as tapif drops it */
        pbuf_take(p, frame, (u16_t)length);
        if (tap.netif->input(p, tap.netif) != ERR_OK)
            pbuf_free(p);
    }
    fprintf(stderr, "cf-lwip-agent: TAP reader stopped: %s\n", strerror(errno));
    return NULL;
}

err_t tap_netif_init(struct netif *netif)
{
    /* As tapif_init and its low_level_init set it up. */
    tap.netif = netif;
    netif->state = &tap;
    netif->name[0] = 't';
    netif->name[1] = 'p';
    netif->output = etharp_output;
#if LWIP_IPV6
    netif->output_ip6 = ethip6_output;
#endif
    netif->linkoutput = tap_output;
    netif->mtu = 1500;
    netif->hwaddr_len = 6;
    netif->flags = NETIF_FLAG_BROADCAST | NETIF_FLAG_ETHARP | NETIF_FLAG_IGMP;
    netif_set_link_up(netif);
    pthread_t reader;
    if (pthread_create(&reader, NULL, tap_reader, NULL) != 0)
        return ERR_MEM;
    pthread_detach(reader);
    return ERR_OK;
}
