package main

import (
	"encoding/json"
	"math"
	"time"

	"golang.org/x/sys/unix"
	"gvisor.dev/gvisor/pkg/tcpip"
)

// Linux's IP_PMTUDISC_* values; netstack numbers its modes differently
// (PMTUDiscoveryWant = 0, Dont = 1, Do = 2, Probe = 3).
var pmtuToNetstack = map[string]int{
	"IP_PMTUDISC_DONT": tcpip.PMTUDiscoveryDont, "IP_PMTUDISC_WANT": tcpip.PMTUDiscoveryWant,
	"IP_PMTUDISC_DO": tcpip.PMTUDiscoveryDo, "IP_PMTUDISC_PROBE": tcpip.PMTUDiscoveryProbe,
}

// Options netstack lacks: answered unsupported.
var missingOptions = map[string]string{
	"SO_OOBINLINE": "netstack keeps no urgent data",
	"IP_OPTIONS":   "netstack sends no IP options from sockets",
	"IP_RECVOPTS":  "netstack returns no received IP options",
	"IP_MTU":       "netstack exposes no path MTU (no IP_MTU)",
	"UDP_CORK":     "netstack's UDP has no corking",
}

// clampBufSize doubles a buffer size as Linux and gVisor do (sk_sndbuf = 2 x value).
func clampBufSize(v, min, max int64) int64 {
	if v > max {
		v = max
	}
	if v < math.MaxInt32/2 {
		v *= 2
		if v < min {
			v = min
		}
	} else {
		v = math.MaxInt32
	}
	return v
}

var tcpOnly = map[string]bool{"TCP_NODELAY": true, "TCP_MAXSEG": true, "TCP_KEEPIDLE": true,
	"TCP_KEEPINTVL": true, "TCP_KEEPCNT": true, "TCP_USER_TIMEOUT": true}

func (a *agent) setsockopt(in args) (interface{}, reply) {
	s, failure := a.sock(in)
	if failure != nil {
		return nil, failure
	}
	name, failure := in.text("name")
	if failure != nil {
		return nil, failure
	}
	if why, ok := missingOptions[name]; ok {
		return nil, unsupported("%s: %s", name, why)
	}
	if name == "SO_ERROR" || name == "SO_TYPE" {
		return nil, errnoReply(unix.ENOPROTOOPT)
	}
	if tcpOnly[name] && !s.tcp {
		return nil, errnoReply(unix.ENOPROTOOPT) // SOL_TCP on UDP, as Linux
	}
	so := s.ep.SocketOptions()
	if name == "SO_LINGER" {
		var l struct {
			OnOff  *int64 `json:"onoff"`
			Linger *int64 `json:"linger"`
		}
		if err := json.Unmarshal(in["value"], &l); err != nil || l.OnOff == nil || l.Linger == nil {
			return nil, badRequest("SO_LINGER value must be {onoff, linger}")
		}
		so.SetLinger(tcpip.LingerOption{Enabled: *l.OnOff != 0, Timeout: time.Duration(*l.Linger) * time.Second})
		return nil, nil
	}
	if name == "IP_MTU_DISCOVER" {
		mode, failure := in.text("value")
		if failure != nil {
			return nil, failure
		}
		v, ok := pmtuToNetstack[mode]
		if !ok {
			return nil, unsupported("unknown value '%s'", mode)
		}
		if err := s.ep.SetSockOptInt(tcpip.MTUDiscoverOption, v); err != nil {
			return nil, tcpipReply(err)
		}
		return nil, nil
	}
	v, failure := in.integer("value")
	if failure != nil {
		return nil, failure
	}
	var err tcpip.Error
	switch name {
	case "SO_REUSEADDR":
		so.SetReuseAddress(v != 0)
	case "SO_KEEPALIVE":
		so.SetKeepAlive(v != 0)
	case "SO_BROADCAST":
		so.SetBroadcast(v != 0)
	case "SO_RCVBUF":
		min, max := so.ReceiveBufferLimits()
		so.SetReceiveBufferSize(clampBufSize(int64(uint32(v)), min, max), true)
	case "SO_SNDBUF":
		min, max := so.SendBufferLimits()
		so.SetSendBufferSize(clampBufSize(int64(uint32(v)), min, max), true)
	case "IP_TTL":
		if v == -1 {
			v = 0 // the default TTL
		} else if v < 1 || v > 255 {
			return nil, errnoReply(unix.EINVAL)
		}
		err = s.ep.SetSockOptInt(tcpip.IPv4TTLOption, int(v))
	case "IP_TOS":
		err = s.ep.SetSockOptInt(tcpip.IPv4TOSOption, int(v))
	case "IP_RECVERR":
		so.SetIPv4RecvError(v != 0)
	case "IP_RECVTOS":
		so.SetReceiveTOS(v != 0)
	case "IP_PKTINFO":
		so.SetReceivePacketInfo(v != 0)
	case "TCP_NODELAY":
		so.SetDelayOption(v == 0)
	case "TCP_MAXSEG":
		err = s.ep.SetSockOptInt(tcpip.MaxSegOption, int(v))
	case "TCP_KEEPIDLE":
		if v < 1 || v > 32767 { // MAX_TCP_KEEPIDLE
			return nil, errnoReply(unix.EINVAL)
		}
		opt := tcpip.KeepaliveIdleOption(time.Duration(v) * time.Second)
		err = s.ep.SetSockOpt(&opt)
	case "TCP_KEEPINTVL":
		if v < 1 || v > 32767 { // MAX_TCP_KEEPINTVL
			return nil, errnoReply(unix.EINVAL)
		}
		opt := tcpip.KeepaliveIntervalOption(time.Duration(v) * time.Second)
		err = s.ep.SetSockOpt(&opt)
	case "TCP_KEEPCNT":
		if v < 1 || v > 127 { // MAX_TCP_KEEPCNT
			return nil, errnoReply(unix.EINVAL)
		}
		err = s.ep.SetSockOptInt(tcpip.KeepaliveCountOption, int(v))
	case "TCP_USER_TIMEOUT":
		if v < 0 {
			return nil, errnoReply(unix.EINVAL)
		}
		opt := tcpip.TCPUserTimeoutOption(time.Duration(v) * time.Millisecond)
		err = s.ep.SetSockOpt(&opt)
	default:
		return nil, unsupported("unknown option '%s'", name)
	}
	if err != nil {
		return nil, tcpipReply(err)
	}
	return nil, nil
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

func (a *agent) getsockopt(in args) (interface{}, reply) {
	s, failure := a.sock(in)
	if failure != nil {
		return nil, failure
	}
	name, failure := in.text("name")
	if failure != nil {
		return nil, failure
	}
	if why, ok := missingOptions[name]; ok {
		return nil, unsupported("%s: %s", name, why)
	}
	if tcpOnly[name] && !s.tcp {
		return nil, errnoReply(unix.ENOPROTOOPT)
	}
	so := s.ep.SocketOptions()
	intOpt := func(opt tcpip.SockOptInt) (interface{}, reply) {
		v, err := s.ep.GetSockOptInt(opt)
		if err != nil {
			return nil, tcpipReply(err)
		}
		return v, nil
	}
	switch name {
	case "SO_ERROR":
		if err := so.GetLastError(); err != nil {
			return errnoName(netstackErrno(err)), nil
		}
		return nil, nil
	case "SO_TYPE":
		if s.tcp {
			return "tcp", nil
		}
		return "udp", nil
	case "SO_LINGER":
		l := so.GetLinger()
		return map[string]interface{}{"onoff": boolInt(l.Enabled), "linger": int(l.Timeout.Seconds())}, nil
	case "SO_REUSEADDR":
		return boolInt(so.GetReuseAddress()), nil
	case "SO_KEEPALIVE":
		return boolInt(so.GetKeepAlive()), nil
	case "SO_BROADCAST":
		return boolInt(so.GetBroadcast()), nil
	case "SO_RCVBUF":
		return so.GetReceiveBufferSize(), nil
	case "SO_SNDBUF":
		return so.GetSendBufferSize(), nil
	case "IP_TTL":
		v, err := s.ep.GetSockOptInt(tcpip.IPv4TTLOption)
		if err != nil {
			return nil, tcpipReply(err)
		}
		if v == 0 {
			v = defaultTTL
		}
		return v, nil
	case "IP_TOS":
		return intOpt(tcpip.IPv4TOSOption)
	case "IP_RECVERR":
		return boolInt(so.GetIPv4RecvError()), nil
	case "IP_RECVTOS":
		return boolInt(so.GetReceiveTOS()), nil
	case "IP_PKTINFO":
		return boolInt(so.GetReceivePacketInfo()), nil
	case "IP_MTU_DISCOVER":
		v, err := s.ep.GetSockOptInt(tcpip.MTUDiscoverOption)
		if err != nil {
			return nil, tcpipReply(err)
		}
		for mode, n := range pmtuToNetstack {
			if n == v {
				return mode, nil
			}
		}
		return nil, badRequest("netstack path MTU mode %d", v)
	case "TCP_NODELAY":
		return boolInt(!so.GetDelayOption()), nil
	case "TCP_MAXSEG":
		return intOpt(tcpip.MaxSegOption)
	case "TCP_KEEPIDLE":
		var v tcpip.KeepaliveIdleOption
		if err := s.ep.GetSockOpt(&v); err != nil {
			return nil, tcpipReply(err)
		}
		return int(time.Duration(v) / time.Second), nil
	case "TCP_KEEPINTVL":
		var v tcpip.KeepaliveIntervalOption
		if err := s.ep.GetSockOpt(&v); err != nil {
			return nil, tcpipReply(err)
		}
		return int(time.Duration(v) / time.Second), nil
	case "TCP_KEEPCNT":
		return intOpt(tcpip.KeepaliveCountOption)
	case "TCP_USER_TIMEOUT":
		var v tcpip.TCPUserTimeoutOption
		if err := s.ep.GetSockOpt(&v); err != nil {
			return nil, tcpipReply(err)
		}
		return int(time.Duration(v) / time.Millisecond), nil
	}
	return nil, unsupported("unknown option '%s'", name)
}
