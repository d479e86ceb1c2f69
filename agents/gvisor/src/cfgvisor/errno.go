package main

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net"

	"golang.org/x/sys/unix"
	"gvisor.dev/gvisor/pkg/syserr"
	"gvisor.dev/gvisor/pkg/tcpip"
)

// reply is a failure response: {"errno"}, {"unsupported"} or {"error"}.
type reply = map[string]interface{}

func errnoReply(e unix.Errno) reply {
	return reply{"errno": errnoName(e)}
}

// errnoName is the errno.h name; unix.ErrnoName already prefers EAGAIN, EOPNOTSUPP and
// EDEADLK (docs/agent-protocol.md).
func errnoName(e unix.Errno) string {
	switch e {
	case unix.EAGAIN:
		return "EAGAIN"
	case unix.EOPNOTSUPP:
		return "EOPNOTSUPP"
	case unix.EDEADLK:
		return "EDEADLK"
	}
	if name := unix.ErrnoName(e); name != "" {
		return name
	}
	return fmt.Sprintf("ERRNO_%d", int(e))
}

// netstackErrno is the errno gVisor's own syscall layer returns for a tcpip.Error.
func netstackErrno(err tcpip.Error) unix.Errno {
	return unix.Errno(syserr.TranslateNetstackError(err).ToLinux())
}

// tcpipReply answers a tcpip.Error as its errno name; ErrNotSupported (an option or
// mode netstack lacks) is answered unsupported.
func tcpipReply(err tcpip.Error) reply {
	if _, ok := err.(*tcpip.ErrNotSupported); ok {
		return unsupported("netstack: %s", err)
	}
	return errnoReply(netstackErrno(err))
}

func unsupported(format string, v ...interface{}) reply {
	return reply{"unsupported": fmt.Sprintf(format, v...)}
}

func badRequest(format string, v ...interface{}) reply {
	return reply{"error": fmt.Sprintf(format, v...)}
}

// args are a request's named arguments, read with type checks.
type args map[string]json.RawMessage

func (a args) has(key string) bool {
	_, ok := a[key]
	return ok
}

func (a args) integer(key string) (int64, reply) {
	raw, ok := a[key]
	if !ok {
		return 0, badRequest("missing argument '%s'", key)
	}
	var b bool
	if json.Unmarshal(raw, &b) == nil { // JSON true/false count as 1/0
		if b {
			return 1, nil
		}
		return 0, nil
	}
	var v int64
	if err := json.Unmarshal(raw, &v); err != nil {
		return 0, badRequest("argument '%s' must be an integer", key)
	}
	return v, nil
}

func (a args) text(key string) (string, reply) {
	raw, ok := a[key]
	if !ok {
		return "", badRequest("missing argument '%s'", key)
	}
	var v string
	if err := json.Unmarshal(raw, &v); err != nil {
		return "", badRequest("argument '%s' must be a string", key)
	}
	return v, nil
}

func (a args) data(key string) ([]byte, reply) {
	text, failure := a.text(key)
	if failure != nil {
		return nil, failure
	}
	v, err := base64.StdEncoding.DecodeString(text)
	if err != nil {
		return nil, badRequest("%s is not base64: %v", key, err)
	}
	return v, nil
}

// names reads a list of names as the OR of their bits in table; a name the table lacks
// is unsupported.
func (a args) names(key string, table map[string]uint32, optional bool) (uint32, reply) {
	raw, ok := a[key]
	if !ok {
		if optional {
			return 0, nil
		}
		return 0, badRequest("missing argument '%s'", key)
	}
	var list []string
	if err := json.Unmarshal(raw, &list); err != nil {
		return 0, badRequest("argument '%s' must be a list of names", key)
	}
	var bits uint32
	for _, name := range list {
		bit, ok := table[name]
		if !ok {
			return 0, unsupported("unknown %s name '%s'", key, name)
		}
		bits |= bit
	}
	return bits, nil
}

// endpoint reads addr and port; 0.0.0.0 is netstack's empty (any) address.
func (a args) endpoint() (tcpip.FullAddress, reply) {
	text, failure := a.text("addr")
	if failure != nil {
		return tcpip.FullAddress{}, failure
	}
	ip := net.ParseIP(text).To4()
	if ip == nil {
		return tcpip.FullAddress{}, badRequest("addr '%s' is not a dotted-quad IPv4 address", text)
	}
	port, failure := a.integer("port")
	if failure != nil {
		return tcpip.FullAddress{}, failure
	}
	if port < 0 || port > 0xffff {
		return tcpip.FullAddress{}, badRequest("port %d out of range", port)
	}
	addr := tcpip.Address(ip)
	if ip.Equal(net.IPv4zero) {
		addr = ""
	}
	return tcpip.FullAddress{Addr: addr, Port: uint16(port)}, nil
}

func addrText(a tcpip.Address) string {
	if len(a) != 4 {
		return "0.0.0.0"
	}
	return net.IP([]byte(a)).String()
}

func endpointJSON(a tcpip.FullAddress) map[string]interface{} {
	return map[string]interface{}{"addr": addrText(a.Addr), "port": int(a.Port)}
}
