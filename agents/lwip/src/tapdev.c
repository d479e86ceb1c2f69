/* The Linux side of the TAP device: lwIP's tapif opens /dev/net/tun but leaves the
 * interface as it finds it (with PRECONFIGURED_TAPIF set it runs no ifconfig). The
 * kernel side must be up for frames to flow; the lab gives it no address. */
#include "agent.h"

#include <errno.h>
#include <net/if.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

int tapdev_bring_up(const char *ifname, int mtu)
{
    int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return errno;
    struct ifreq request;
    memset(&request, 0, sizeof(request));
    strncpy(request.ifr_name, ifname, IFNAMSIZ - 1);
    int problem = 0;
    if (mtu > 0) {
        request.ifr_mtu = mtu;
        if (ioctl(fd, SIOCSIFMTU, &request) < 0)
            problem = errno;
    }
    if (!problem && ioctl(fd, SIOCGIFFLAGS, &request) < 0)
        problem = errno;
    if (!problem && !(request.ifr_flags & IFF_UP)) {
        request.ifr_flags |= IFF_UP;
        if (ioctl(fd, SIOCSIFFLAGS, &request) < 0)
            problem = errno;
    }
    close(fd);
    return problem;
}
