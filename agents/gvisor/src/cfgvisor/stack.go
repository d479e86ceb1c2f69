package main

import (
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"time"

	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/link/fdbased"
	"gvisor.dev/gvisor/pkg/tcpip/network/arp"
	"gvisor.dev/gvisor/pkg/tcpip/network/ipv4"
	"gvisor.dev/gvisor/pkg/tcpip/stack"
	"gvisor.dev/gvisor/pkg/tcpip/transport/icmp"
	"gvisor.dev/gvisor/pkg/tcpip/transport/tcp"
	"gvisor.dev/gvisor/pkg/tcpip/transport/udp"
)

// config is the lab as the contract's CF_* variables describe it.
type config struct {
	tap     string
	tapFD   int
	mac     tcpip.LinkAddress
	addr    tcpip.Address
	prefix  int
	gateway tcpip.Address
	mtu     uint32
	routes  []tcpip.Route
	nic     tcpip.NICID
}

func parseIPv4(text string) (tcpip.Address, error) {
	ip := net.ParseIP(strings.TrimSpace(text)).To4()
	if ip == nil {
		return "", fmt.Errorf("%q is not an IPv4 address", text)
	}
	return tcpip.Address(ip), nil
}

func subnet(addr tcpip.Address, prefix int) (tcpip.Subnet, error) {
	mask := net.CIDRMask(prefix, 32)
	masked := net.IP([]byte(addr)).Mask(mask)
	return tcpip.NewSubnet(tcpip.Address(masked), tcpip.AddressMask(mask))
}

func configFromEnv() (*config, error) {
	cfg := &config{tap: os.Getenv("CF_TAP"), prefix: 24, mtu: 1500}
	fdText := os.Getenv("CF_TAP_FD")
	if fdText == "" {
		return nil, fmt.Errorf("CF_TAP_FD is required (the tester's open TAP descriptor)")
	}
	fd, err := strconv.Atoi(fdText)
	if err != nil {
		return nil, fmt.Errorf("CF_TAP_FD=%q: %v", fdText, err)
	}
	cfg.tapFD = fd
	mac, err := net.ParseMAC(os.Getenv("CF_DUT_MAC"))
	if err != nil {
		return nil, fmt.Errorf("CF_DUT_MAC: %v", err)
	}
	cfg.mac = tcpip.LinkAddress(mac)
	if cfg.addr, err = parseIPv4(os.Getenv("CF_DUT_ADDR")); err != nil {
		return nil, fmt.Errorf("CF_DUT_ADDR: %v", err)
	}
	if text := os.Getenv("CF_PREFIX"); text != "" {
		if cfg.prefix, err = strconv.Atoi(text); err != nil || cfg.prefix < 0 || cfg.prefix > 32 {
			return nil, fmt.Errorf("CF_PREFIX=%q", text)
		}
	}
	if text := os.Getenv("CF_MTU"); text != "" {
		mtu, err := strconv.Atoi(text)
		if err != nil || mtu < 68 {
			return nil, fmt.Errorf("CF_MTU=%q", text)
		}
		cfg.mtu = uint32(mtu)
	}
	// The NIC takes the TAP device's interface index, so IP_PKTINFO's ifindex is the
	// one Linux would report in the same namespace.
	cfg.nic = 1
	if iface, err := net.InterfaceByName(cfg.tap); err == nil {
		cfg.nic = tcpip.NICID(iface.Index)
	}
	onLink, err := subnet(cfg.addr, cfg.prefix)
	if err != nil {
		return nil, err
	}
	cfg.routes = append(cfg.routes, tcpip.Route{Destination: onLink, NIC: cfg.nic})
	for _, item := range strings.FieldsFunc(os.Getenv("CF_ROUTES"), func(r rune) bool { return r == ',' || r == ';' }) {
		var network, gateway string
		if n, _ := fmt.Sscanf(strings.TrimSpace(item), "%s via %s", &network, &gateway); n != 2 {
			return nil, fmt.Errorf("CF_ROUTES: %q is not NET/LEN via GW", item)
		}
		_, ipnet, err := net.ParseCIDR(network)
		if err != nil {
			return nil, fmt.Errorf("CF_ROUTES: %v", err)
		}
		gw, err := parseIPv4(gateway)
		if err != nil {
			return nil, fmt.Errorf("CF_ROUTES: %v", err)
		}
		ones, _ := ipnet.Mask.Size()
		dest, err := subnet(tcpip.Address(ipnet.IP.To4()), ones)
		if err != nil {
			return nil, err
		}
		cfg.routes = append(cfg.routes, tcpip.Route{Destination: dest, Gateway: gw, NIC: cfg.nic})
	}
	if text := os.Getenv("CF_GATEWAY"); text != "" {
		if cfg.gateway, err = parseIPv4(text); err != nil {
			return nil, fmt.Errorf("CF_GATEWAY: %v", err)
		}
		any, _ := tcpip.NewSubnet(tcpip.Address(make([]byte, 4)), tcpip.AddressMask(make([]byte, 4)))
		cfg.routes = append(cfg.routes, tcpip.Route{Destination: any, Gateway: cfg.gateway, NIC: cfg.nic})
	}
	return cfg, nil
}

// defaultTTL is runsc's: netstack.DefaultTTL, Linux's 64.
const defaultTTL = 64

// newStack builds netstack as runsc builds its sandbox stack (runsc/boot/loader.go):
// SACK on, the default TTL set, receive-buffer moderation on; IPv4, ARP, ICMP, UDP, TCP.
func newStack(cfg *config) (*stack.Stack, error) {
	s := stack.New(stack.Options{
		NetworkProtocols:   []stack.NetworkProtocolFactory{ipv4.NewProtocol, arp.NewProtocol},
		TransportProtocols: []stack.TransportProtocolFactory{tcp.NewProtocol, udp.NewProtocol, icmp.NewProtocol4},
		HandleLocal:        true,
	})
	sack := tcpip.TCPSACKEnabled(true)
	if err := s.SetTransportProtocolOption(tcp.ProtocolNumber, &sack); err != nil {
		return nil, fmt.Errorf("SACK: %v", err)
	}
	ttl := tcpip.DefaultTTLOption(defaultTTL)
	if err := s.SetNetworkProtocolOption(ipv4.ProtocolNumber, &ttl); err != nil {
		return nil, fmt.Errorf("TTL: %v", err)
	}
	moderate := tcpip.TCPModerateReceiveBufferOption(true)
	if err := s.SetTransportProtocolOption(tcp.ProtocolNumber, &moderate); err != nil {
		return nil, fmt.Errorf("moderate receive buffer: %v", err)
	}
	// The tester opened the TAP device (IFF_TAP|IFF_NO_PI) and keeps a packet socket on
	// it: the descriptor is used as inherited, never reopened.
	link, err := fdbased.New(&fdbased.Options{
		FDs:                []int{cfg.tapFD},
		MTU:                cfg.mtu,
		EthernetHeader:     true,
		Address:            cfg.mac,
		PacketDispatchMode: fdbased.Readv,
	})
	if err != nil {
		return nil, fmt.Errorf("fdbased.New: %v", err)
	}
	if err := s.CreateNICWithOptions(cfg.nic, link, stack.NICOptions{Name: cfg.tap}); err != nil {
		return nil, fmt.Errorf("CreateNIC: %s", err)
	}
	address := tcpip.ProtocolAddress{
		Protocol:          ipv4.ProtocolNumber,
		AddressWithPrefix: tcpip.AddressWithPrefix{Address: cfg.addr, PrefixLen: cfg.prefix},
	}
	if err := s.AddProtocolAddress(cfg.nic, address, stack.AddressProperties{}); err != nil {
		return nil, fmt.Errorf("AddProtocolAddress: %s", err)
	}
	s.SetRouteTable(cfg.routes)
	return s, nil
}

// facts are netstack's settings as this stack holds them, read back from it.
func facts(s *stack.Stack, cfg *config) map[string]interface{} {
	f := map[string]interface{}{
		"stack":   "gVisor netstack",
		"version": "golang-gvisor-gvisor-dev (Debian), December 2022 snapshot",
		"link":    "fdbased on the inherited CF_TAP_FD (Readv dispatch), Ethernet",
		"mtu":     cfg.mtu,
		"nic":     int(cfg.nic),
		"listen_backlog": "listen(n) asks netstack for a queue of n+1, as gVisor's listen(2) " +
			"(and Linux's accept queue, full only past the backlog); n is clamped to 4096 first",
		"errno_mapping":          "syserr.TranslateNetstackError(err).ToLinux(), as gVisor's syscall layer",
		"tcp_nodelay_default":    false,
		"tcp_nodelay_note":       "Nagle on for every TCP socket, as gVisor's socket layer sets it",
		"tcp_default_mss_source": "link MTU - 40",
	}
	routes := []string{}
	for _, r := range s.GetRouteTable() {
		routes = append(routes, r.String())
	}
	f["routes"] = routes
	var sack tcpip.TCPSACKEnabled
	if s.TransportProtocolOption(tcp.ProtocolNumber, &sack) == nil {
		f["tcp_sack"] = bool(sack)
	}
	var delay tcpip.TCPDelayEnabled
	if s.TransportProtocolOption(tcp.ProtocolNumber, &delay) == nil {
		f["tcp_delay_enabled_stack"] = bool(delay)
	}
	var moderate tcpip.TCPModerateReceiveBufferOption
	if s.TransportProtocolOption(tcp.ProtocolNumber, &moderate) == nil {
		f["tcp_moderate_receive_buffer"] = bool(moderate)
	}
	var rcv tcpip.TCPReceiveBufferSizeRangeOption
	if s.TransportProtocolOption(tcp.ProtocolNumber, &rcv) == nil {
		f["tcp_rmem"] = []int{rcv.Min, rcv.Default, rcv.Max}
	}
	var snd tcpip.TCPSendBufferSizeRangeOption
	if s.TransportProtocolOption(tcp.ProtocolNumber, &snd) == nil {
		f["tcp_wmem"] = []int{snd.Min, snd.Default, snd.Max}
	}
	var tw tcpip.TCPTimeWaitTimeoutOption
	if s.TransportProtocolOption(tcp.ProtocolNumber, &tw) == nil {
		f["tcp_time_wait_s"] = time.Duration(tw).Seconds()
	}
	var linger tcpip.TCPLingerTimeoutOption
	if s.TransportProtocolOption(tcp.ProtocolNumber, &linger) == nil {
		f["tcp_fin_timeout_s"] = time.Duration(linger).Seconds()
	}
	var minRTO tcpip.TCPMinRTOOption
	if s.TransportProtocolOption(tcp.ProtocolNumber, &minRTO) == nil {
		f["tcp_min_rto_s"] = time.Duration(minRTO).Seconds()
	}
	var maxRTO tcpip.TCPMaxRTOOption
	if s.TransportProtocolOption(tcp.ProtocolNumber, &maxRTO) == nil {
		f["tcp_max_rto_s"] = time.Duration(maxRTO).Seconds()
	}
	var retries tcpip.TCPMaxRetriesOption
	if s.TransportProtocolOption(tcp.ProtocolNumber, &retries) == nil {
		f["tcp_max_retries"] = uint64(retries)
	}
	var synRetries tcpip.TCPSynRetriesOption
	if s.TransportProtocolOption(tcp.ProtocolNumber, &synRetries) == nil {
		f["tcp_syn_retries"] = int(synRetries)
	}
	var recovery tcpip.TCPRecovery
	if s.TransportProtocolOption(tcp.ProtocolNumber, &recovery) == nil {
		f["tcp_recovery"] = int(recovery)
		f["tcp_recovery_note"] = "1 = RACK loss detection"
	}
	var cc tcpip.CongestionControlOption
	if s.TransportProtocolOption(tcp.ProtocolNumber, &cc) == nil {
		f["tcp_congestion_control"] = string(cc)
	}
	var ttl tcpip.DefaultTTLOption
	if s.NetworkProtocolOption(ipv4.ProtocolNumber, &ttl) == nil {
		f["ip_default_ttl"] = int(ttl)
	}
	f["tcp_keepalive"] = map[string]interface{}{
		"idle_s": tcp.DefaultKeepaliveIdle.Seconds(), "interval_s": tcp.DefaultKeepaliveInterval.Seconds(),
		"count": tcp.DefaultKeepaliveCount,
	}
	f["tcp_window_scaling"] = "offered; the shift is FindWndScale of the maximum receive buffer " +
		"when moderation is on (tcp_rmem max)"
	f["tcp_quickack_default"] = "on: netstack's TCP endpoints start with TCP_QUICKACK set, " +
		"so ACKs are not delayed by default"
	f["tcp_mss"] = "advertised: link MTU - 40; TCP_MAXSEG accepts 88..65535 (header.TCPMinimumMSS..TCPMaximumMSS)"
	f["pmtu_discovery"] = "IP_MTU_DISCOVER: netstack accepts only IP_PMTUDISC_DONT " +
		"(its PMTUDiscoveryDont = 1, Linux's IP_PMTUDISC_DONT = 0: translated)"
	return f
}
