/* lwIP's build options, as Debian's lwipopts.h and lwIP's opt.h defaults set them: the
 * library was compiled with these same headers, so the values here are its own. The
 * tester copies them into the run's target_facts. */
#include "agent.h"

#include "lwip/opt.h"
#include "lwip/init.h"
#include "lwip/priv/tcp_priv.h"

/* Not lwip/sockets.h: through Debian's posix/sockets.h it includes glibc's netinet/tcp.h,
 * whose BSD `#define TCP_MSS 512` silently replaces lwipopts.h's 1460 (lwIP's tcp.c,
 * which includes no socket header, is built with 1460). */

#define FACT(name) json_object_set_new(facts, #name, json_integer((json_int_t)(name)))

json_t *build_facts(void)
{
    json_t *facts = json_object();
    json_object_set_new(facts, "lwip_version", json_string(LWIP_VERSION_STRING));
    json_object_set_new(facts, "lwipopts", json_string("/usr/include/lwip/lwipopts.h (Debian liblwip-dev)"));
    /* the threading model */
    FACT(NO_SYS);
    FACT(LWIP_TCPIP_CORE_LOCKING);
    FACT(LWIP_NETCONN_FULLDUPLEX);
    FACT(LWIP_SOCKET_OPEN_COUNT);
    /* TCP */
    FACT(TCP_MSS);
    FACT(TCP_WND);
    FACT(LWIP_WND_SCALE);
    FACT(TCP_RCV_SCALE);
    FACT(TCP_SND_BUF);
    FACT(TCP_SND_QUEUELEN);
    FACT(TCP_SNDLOWAT);
    FACT(TCP_SNDQUEUELOWAT);
    FACT(TCP_WND_UPDATE_THRESHOLD);
    FACT(TCP_LISTEN_BACKLOG);
    FACT(TCP_DEFAULT_LISTEN_BACKLOG);
    FACT(TCP_QUEUE_OOSEQ);
    FACT(TCP_OOSEQ_MAX_BYTES);
    FACT(TCP_OOSEQ_MAX_PBUFS);
    FACT(TCP_MAXRTX);
    FACT(TCP_SYNMAXRTX);
    FACT(TCP_TTL);
    FACT(TCP_MSL);
    FACT(TCP_TMR_INTERVAL);
    FACT(TCP_FAST_INTERVAL);
    FACT(TCP_SLOW_INTERVAL);
    FACT(TCP_CALCULATE_EFF_SEND_MSS);
    FACT(TCP_OVERSIZE);
    FACT(LWIP_TCP_TIMESTAMPS);
    FACT(LWIP_TCP_SACK_OUT);
    FACT(LWIP_TCP_KEEPALIVE);
    FACT(TCP_KEEPIDLE_DEFAULT);
    FACT(TCP_KEEPINTVL_DEFAULT);
    FACT(TCP_KEEPCNT_DEFAULT);
    FACT(LWIP_ALTCP);
    /* sockets */
    FACT(SO_REUSE);
    FACT(SO_REUSE_RXTOALL);
    FACT(LWIP_SO_RCVBUF);
    FACT(RECV_BUFSIZE_DEFAULT);
    FACT(LWIP_SO_SNDTIMEO);
    FACT(LWIP_SO_RCVTIMEO);
    FACT(LWIP_SO_LINGER);
    FACT(LWIP_NETBUF_RECVINFO);
    FACT(LWIP_POLL);
    FACT(LWIP_SOCKET_SELECT);
    FACT(LWIP_RANDOMIZE_INITIAL_LOCAL_PORTS);
    /* IPv4 */
    FACT(IP_DEFAULT_TTL);
    FACT(IP_FORWARD);
    FACT(IP_OPTIONS_ALLOWED);
    FACT(IP_REASSEMBLY);
    FACT(IP_FRAG);
    FACT(IP_REASS_MAXAGE);
    FACT(IP_REASS_MAX_PBUFS);
    FACT(IP_SOF_BROADCAST);
    FACT(IP_SOF_BROADCAST_RECV);
    FACT(LWIP_ICMP);
    FACT(ICMP_TTL);
    FACT(LWIP_BROADCAST_PING);
    FACT(LWIP_MULTICAST_PING);
    FACT(LWIP_RAW);
    FACT(LWIP_UDP);
    FACT(LWIP_UDPLITE);
    FACT(UDP_TTL);
    FACT(LWIP_IGMP);
    FACT(LWIP_IPV6);
    /* ARP */
    FACT(LWIP_ARP);
    FACT(ARP_TABLE_SIZE);
    FACT(ARP_MAXAGE);
    FACT(ARP_QUEUEING);
    FACT(ARP_QUEUE_LEN);
    FACT(ETHARP_SUPPORT_STATIC_ENTRIES);
    /* memory */
    FACT(MEM_LIBC_MALLOC);
    FACT(MEMP_MEM_MALLOC);
    FACT(MEMP_NUM_NETCONN);
    FACT(MEMP_NUM_TCP_PCB);
    FACT(MEMP_NUM_TCP_PCB_LISTEN);
    FACT(MEMP_NUM_UDP_PCB);
    FACT(MEMP_NUM_TCP_SEG);
    FACT(PBUF_POOL_SIZE);
    FACT(LWIP_NETIF_LOOPBACK);
    FACT(LWIP_CHECKSUM_ON_COPY);
    FACT(CHECKSUM_CHECK_IP);
    FACT(CHECKSUM_CHECK_UDP);
    FACT(CHECKSUM_CHECK_TCP);
    FACT(CHECKSUM_CHECK_ICMP);
    return facts;
}
