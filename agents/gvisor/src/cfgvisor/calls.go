package main

import (
	"bytes"
	"log"
	"sort"
	"sync"
	"time"

	"golang.org/x/sys/unix"
	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/network/ipv4"
	"gvisor.dev/gvisor/pkg/tcpip/stack"
	"gvisor.dev/gvisor/pkg/tcpip/transport/tcp"
	"gvisor.dev/gvisor/pkg/tcpip/transport/udp"
	"gvisor.dev/gvisor/pkg/waiter"
)

// callNames are agent_protocol/names.py CALLS, in its order.
var callNames = []string{
	"hello", "socket", "bind", "connect", "listen", "accept", "send", "sendto", "recv",
	"recvfrom", "recvmsg", "setsockopt", "getsockopt", "ioctl", "fcntl", "shutdown",
	"close", "poll", "getsockname", "getpeername", "snapshot",
}

// Message flags of the protocol with Linux's values.
var messageFlags = map[string]uint32{
	"MSG_DONTWAIT": unix.MSG_DONTWAIT, "MSG_PEEK": unix.MSG_PEEK, "MSG_TRUNC": unix.MSG_TRUNC,
	"MSG_ERRQUEUE": unix.MSG_ERRQUEUE, "MSG_WAITALL": unix.MSG_WAITALL,
	"MSG_NOSIGNAL": unix.MSG_NOSIGNAL, "MSG_MORE": unix.MSG_MORE, "MSG_OOB": unix.MSG_OOB,
}

// maxListenBacklog is Linux's default somaxconn, gVisor's maxListenBacklog.
const maxListenBacklog = 4096

const maxRecvSize = 1 << 20

// sock is one endpoint the agent holds.
type sock struct {
	handle   int
	ep       tcpip.Endpoint
	wq       *waiter.Queue
	tcp      bool
	mu       sync.Mutex // guards nonblock
	nonblock bool
	closed   chan struct{} // closed by close(): waiters answer EBADF
}

func (s *sock) nonBlocking() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.nonblock
}

type agent struct {
	cfg     *config
	stack   *stack.Stack
	facts   map[string]interface{}
	mu      sync.Mutex
	sockets map[int]*sock
	next    int
	stop    chan struct{} // closed at the end of input
	handler map[string]func(args) (interface{}, reply)
}

func newAgent(cfg *config) (*agent, error) {
	s, err := newStack(cfg)
	if err != nil {
		return nil, err
	}
	a := &agent{cfg: cfg, stack: s, sockets: map[int]*sock{}, next: 3, stop: make(chan struct{})}
	a.facts = facts(s, cfg)
	a.handler = map[string]func(args) (interface{}, reply){
		"hello": a.hello, "socket": a.socket, "bind": a.bind, "connect": a.connect,
		"listen": a.listen, "accept": a.accept, "send": a.send, "sendto": a.sendto,
		"recv": a.recv, "recvfrom": a.recvfrom, "recvmsg": a.recvmsg,
		"setsockopt": a.setsockopt, "getsockopt": a.getsockopt, "ioctl": a.ioctl,
		"fcntl": a.fcntl, "shutdown": a.shutdownCall, "close": a.close, "poll": a.poll,
		"getsockname": a.getsockname, "getpeername": a.getpeername, "snapshot": a.snapshot,
	}
	return a, nil
}

func (a *agent) calls() map[string]func(args) (interface{}, reply) { return a.handler }

func (a *agent) stopAll() {
	select {
	case <-a.stop:
	default:
		close(a.stop)
	}
}

// shutdown closes every endpoint at the end of input.
func (a *agent) shutdown() {
	a.mu.Lock()
	held := a.sockets
	a.sockets = map[int]*sock{}
	a.mu.Unlock()
	for _, s := range held {
		s.ep.Close()
	}
}

func (a *agent) add(ep tcpip.Endpoint, wq *waiter.Queue, isTCP bool) int {
	a.mu.Lock()
	defer a.mu.Unlock()
	s := &sock{handle: a.next, ep: ep, wq: wq, tcp: isTCP, closed: make(chan struct{})}
	a.sockets[a.next] = s
	a.next++
	return s.handle
}

func (a *agent) sock(in args) (*sock, reply) {
	handle, failure := in.integer("sock")
	if failure != nil {
		return nil, failure
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	s, ok := a.sockets[int(handle)]
	if !ok {
		return nil, badRequest("unknown socket handle %d", handle)
	}
	return s, nil
}

// waiter blocks a call until the endpoint signals one of its events, as gVisor's
// socket layer does with waiter.NewChannelEntry.
type waiting struct {
	s     *sock
	entry waiter.Entry
	ch    chan struct{}
}

func (a *agent) startWait(s *sock, mask waiter.EventMask) *waiting {
	w := &waiting{s: s}
	w.entry, w.ch = waiter.NewChannelEntry(mask | waiter.EventHUp | waiter.EventErr)
	s.wq.EventRegister(&w.entry)
	return w
}

func (w *waiting) done() { w.s.wq.EventUnregister(&w.entry) }

// block waits for an event; a failure reply when the socket was closed or the input
// ended meanwhile, or the deadline (if any) passed: nil, nil then.
func (a *agent) block(w *waiting, deadline <-chan time.Time) (timedOut bool, failure reply) {
	select {
	case <-w.ch:
		return false, nil
	case <-deadline:
		return true, nil
	case <-w.s.closed:
		return false, errnoReply(unix.EBADF)
	case <-a.stop:
		return false, badRequest("the agent stopped at the end of input with this call waiting")
	}
}

// --- calls ---------------------------------------------------------------------------

// barrierGraceMs: netstack answers an echo request on its link dispatcher at once but
// handles TCP segments on its processor goroutines, so a TCP answer to a segment sent
// before the tester's barrier can follow the echo reply (docs/agent-protocol.md).
const barrierGraceMs = 100

func (a *agent) hello(args) (interface{}, reply) {
	return map[string]interface{}{
		"agent": "gvisor", "protocol": 1, "calls": callNames, "facts": a.facts,
		"barrier_grace_ms": barrierGraceMs,
	}, nil
}

func (a *agent) socket(in args) (interface{}, reply) {
	kind, failure := in.text("type")
	if failure != nil {
		return nil, failure
	}
	var proto tcpip.TransportProtocolNumber
	switch kind {
	case "tcp":
		proto = tcp.ProtocolNumber
	case "udp":
		proto = udp.ProtocolNumber
	default:
		return nil, unsupported("unknown type '%s'", kind)
	}
	wq := &waiter.Queue{}
	ep, err := a.stack.NewEndpoint(proto, ipv4.ProtocolNumber, wq)
	if err != nil {
		return nil, tcpipReply(err)
	}
	if kind == "tcp" {
		// gVisor's socket layer turns Nagle on for every stream socket (netstack.New).
		ep.SocketOptions().SetDelayOption(true)
	}
	return a.add(ep, wq, kind == "tcp"), nil
}

func (a *agent) bind(in args) (interface{}, reply) {
	s, failure := a.sock(in)
	if failure != nil {
		return nil, failure
	}
	addr, failure := in.endpoint()
	if failure != nil {
		return nil, failure
	}
	err := s.ep.Bind(addr)
	if _, ok := err.(*tcpip.ErrNoPortAvailable); ok {
		// bind(2) answers EADDRINUSE whether the port was taken or none was free.
		err = &tcpip.ErrPortInUse{}
	}
	if err != nil {
		return nil, tcpipReply(err)
	}
	return nil, nil
}

func (a *agent) connect(in args) (interface{}, reply) {
	s, failure := a.sock(in)
	if failure != nil {
		return nil, failure
	}
	addr, failure := in.endpoint()
	if failure != nil {
		return nil, failure
	}
	connectErr := func(err tcpip.Error) reply {
		if _, ok := err.(*tcpip.ErrNoPortAvailable); ok && s.tcp {
			// TCP answers EADDRNOTAVAIL when no ephemeral port is left.
			return errnoReply(unix.EADDRNOTAVAIL)
		}
		return tcpipReply(err)
	}
	if !s.tcp || s.nonBlocking() {
		if err := s.ep.Connect(addr); err != nil {
			return nil, connectErr(err)
		}
		return nil, nil
	}
	// A blocking connect waits until the handshake ends, then asks Connect again for
	// its result (gVisor's Socket.Connect).
	w := a.startWait(s, waiter.WritableEvents)
	defer w.done()
	switch err := s.ep.Connect(addr); err.(type) {
	case nil:
		return nil, nil
	case *tcpip.ErrConnectStarted, *tcpip.ErrAlreadyConnecting:
	default:
		return nil, connectErr(err)
	}
	for {
		if _, failure := a.block(w, nil); failure != nil {
			return nil, failure
		}
		switch err := s.ep.Connect(addr); err.(type) {
		case nil:
			return nil, nil
		case *tcpip.ErrAlreadyConnecting, *tcpip.ErrConnectStarted:
			continue
		default:
			return nil, connectErr(err)
		}
	}
}

func (a *agent) listen(in args) (interface{}, reply) {
	s, failure := a.sock(in)
	if failure != nil {
		return nil, failure
	}
	backlog, failure := in.integer("backlog")
	if failure != nil {
		return nil, failure
	}
	// listen(2) takes the backlog as unsigned, capped at somaxconn; gVisor passes one
	// more to netstack, whose queue is full at exactly n, so that n+1 connections wait
	// as in Linux (sk_acceptq_is_full uses >).
	if backlog < 0 || backlog > maxListenBacklog {
		backlog = maxListenBacklog
	}
	if err := s.ep.Listen(int(backlog) + 1); err != nil {
		return nil, tcpipReply(err)
	}
	return nil, nil
}

func (a *agent) accept(in args) (interface{}, reply) {
	s, failure := a.sock(in)
	if failure != nil {
		return nil, failure
	}
	var peer tcpip.FullAddress
	ep, wq, err := s.ep.Accept(&peer)
	if _, would := err.(*tcpip.ErrWouldBlock); would && !s.nonBlocking() {
		w := a.startWait(s, waiter.ReadableEvents)
		defer w.done()
		for {
			ep, wq, err = s.ep.Accept(&peer)
			if _, would := err.(*tcpip.ErrWouldBlock); !would {
				break
			}
			if _, failure := a.block(w, nil); failure != nil {
				return nil, failure
			}
		}
	}
	if err != nil {
		return nil, tcpipReply(err)
	}
	ep.SocketOptions().SetDelayOption(true) // as netstack.New does for the new socket
	result := endpointJSON(peer)
	result["sock"] = a.add(ep, wq, true)
	return result, nil
}

func (a *agent) send(in args) (interface{}, reply) { return a.sendCommon(in, false) }

func (a *agent) sendto(in args) (interface{}, reply) { return a.sendCommon(in, true) }

func (a *agent) sendCommon(in args, to bool) (interface{}, reply) {
	s, failure := a.sock(in)
	if failure != nil {
		return nil, failure
	}
	flags, failure := in.names("flags", messageFlags, true)
	if failure != nil {
		return nil, failure
	}
	if flags&unix.MSG_OOB != 0 {
		return nil, unsupported("netstack does not send urgent data (MSG_OOB)")
	}
	if flags&unix.MSG_MORE != 0 && !s.tcp {
		return nil, unsupported("netstack's UDP ignores MSG_MORE (no corking)")
	}
	data, failure := in.data("data")
	if failure != nil {
		return nil, failure
	}
	opts := tcpip.WriteOptions{More: flags&unix.MSG_MORE != 0}
	if to {
		addr, failure := in.endpoint()
		if failure != nil {
			return nil, failure
		}
		opts.To = &addr
	}
	dontWait := flags&unix.MSG_DONTWAIT != 0 || s.nonBlocking()
	reader := bytes.NewReader(data)
	var total int64
	var w *waiting
	// A blocking send waits until all of its data is taken (gVisor's Socket.SendMsg);
	// MSG_NOSIGNAL is implied: EPIPE is an answer, never a signal.
	for {
		n, err := s.ep.Write(reader, opts)
		total += n
		block := false
		switch err.(type) {
		case nil:
			block = total != int64(len(data))
		case *tcpip.ErrWouldBlock:
			block = true
		}
		if block && !dontWait {
			if w == nil {
				w = a.startWait(s, waiter.WritableEvents)
				defer w.done()
				continue // try again before waiting, as SendMsg does
			}
			if _, failure := a.block(w, nil); failure != nil {
				if total > 0 {
					return total, nil
				}
				return nil, failure
			}
			continue
		}
		if err != nil && total == 0 {
			return nil, tcpipReply(err)
		}
		if err == nil && total == 0 && len(data) > 0 && block {
			return nil, errnoReply(unix.EAGAIN)
		}
		return total, nil
	}
}

type recvKind int

const (
	recvPlain recvKind = iota
	recvFrom
	recvMsg
)

func (a *agent) recv(in args) (interface{}, reply)     { return a.recvCommon(in, recvPlain) }
func (a *agent) recvfrom(in args) (interface{}, reply) { return a.recvCommon(in, recvFrom) }
func (a *agent) recvmsg(in args) (interface{}, reply)  { return a.recvCommon(in, recvMsg) }

func (a *agent) recvCommon(in args, kind recvKind) (interface{}, reply) {
	s, failure := a.sock(in)
	if failure != nil {
		return nil, failure
	}
	size, failure := in.integer("size")
	if failure != nil {
		return nil, failure
	}
	if size < 0 || size > maxRecvSize {
		return nil, badRequest("size %d out of range", size)
	}
	flags, failure := in.names("flags", messageFlags, true)
	if failure != nil {
		return nil, failure
	}
	if flags&unix.MSG_OOB != 0 {
		return nil, unsupported("netstack keeps no urgent data (MSG_OOB)")
	}
	if flags&unix.MSG_ERRQUEUE != 0 {
		return a.recvErr(s, int(size), kind)
	}
	peek := flags&unix.MSG_PEEK != 0
	trunc := flags&unix.MSG_TRUNC != 0
	waitAll := flags&unix.MSG_WAITALL != 0 && s.tcp
	dontWait := flags&unix.MSG_DONTWAIT != 0 || s.nonBlocking()
	var got bytes.Buffer
	var res tcpip.ReadResult
	var w *waiting
	for {
		var buf bytes.Buffer
		limit := size - int64(got.Len())
		var dst = &tcpip.LimitedWriter{W: &buf, N: limit}
		var err tcpip.Error
		res, err = s.ep.Read(dst, tcpip.ReadOptions{Peek: peek, NeedRemoteAddr: !s.tcp})
		if _, bad := err.(*tcpip.ErrBadBuffer); bad && limit == 0 {
			err = nil
		}
		if err == nil && s.tcp && trunc {
			buf.Reset() // TCP discards the data with MSG_TRUNC (tcp(7))
		}
		if err == nil && !peek && res.Count > 0 {
			s.ep.ModerateRecvBuf(res.Count)
		}
		got.Write(buf.Bytes())
		_, would := err.(*tcpip.ErrWouldBlock)
		if err != nil && !would {
			if got.Len() > 0 {
				break
			}
			if _, closed := err.(*tcpip.ErrClosedForReceive); closed && s.tcp {
				break // end of stream: recv returns 0 octets
			}
			if _, closed := err.(*tcpip.ErrClosedForReceive); closed && dontWait {
				return nil, errnoReply(unix.EAGAIN)
			}
			return nil, tcpipReply(err)
		}
		if err == nil && (!waitAll || int64(got.Len()) >= size || peek) {
			break
		}
		if dontWait {
			if got.Len() > 0 {
				break
			}
			return nil, errnoReply(unix.EAGAIN)
		}
		if w == nil {
			w = a.startWait(s, waiter.ReadableEvents)
			defer w.done()
			continue
		}
		if _, failure := a.block(w, nil); failure != nil {
			if got.Len() > 0 {
				break
			}
			return nil, failure
		}
	}
	result := map[string]interface{}{"data": encode(got.Bytes())}
	if kind == recvPlain {
		return result, nil
	}
	if s.tcp {
		result["addr"], result["port"] = nil, nil
		if kind == recvMsg { // TCP's recvmsg names no peer (Linux: msg_namelen 0)
			result["addr"], result["port"] = nil, nil
		}
		if remote, err := s.ep.GetRemoteAddress(); err == nil && kind == recvFrom {
			_ = remote // Linux's recvfrom on TCP leaves the address unset too
		}
	} else {
		for k, v := range endpointJSON(res.RemoteAddr) {
			result[k] = v
		}
	}
	if kind == recvMsg {
		returned := []string{}
		if !s.tcp && res.Total > res.Count {
			returned = append(returned, "MSG_TRUNC")
		}
		result["flags"] = returned
		result["errqueue"] = nil
		result["ancillary"] = ancillary(s, res.ControlMessages)
	}
	return result, nil
}

// ancillary is recvmsg's IP_RECVTOS and IP_PKTINFO messages; Linux gives them for
// datagram sockets only.
func ancillary(s *sock, cm tcpip.ReceivableControlMessages) map[string]interface{} {
	found := map[string]interface{}{}
	if s.tcp {
		return found
	}
	if cm.HasTOS {
		found["tos"] = int(cm.TOS)
	}
	if cm.HasIPPacketInfo {
		found["pktinfo"] = map[string]interface{}{
			"ifindex":  int(cm.PacketInfo.NIC),
			"spec_dst": addrText(cm.PacketInfo.LocalAddr),
			"addr":     addrText(cm.PacketInfo.DestinationAddr),
		}
	}
	return found
}

var errOrigins = map[tcpip.SockErrOrigin]string{
	tcpip.SockExtErrorOriginNone: "NONE", tcpip.SockExtErrorOriginLocal: "LOCAL",
	tcpip.SockExtErrorOriginICMP: "ICMP", tcpip.SockExtErrorOriginICMP6: "ICMP6",
}

// recvErr reads the error queue (MSG_ERRQUEUE), as gVisor's recvErr and Linux's
// ip_recv_error: the errant datagram's payload as data, its destination as addr.
func (a *agent) recvErr(s *sock, size int, kind recvKind) (interface{}, reply) {
	so := s.ep.SocketOptions()
	sockErr := so.DequeueErr()
	if sockErr == nil {
		return nil, errnoReply(unix.EAGAIN)
	}
	// The pending error follows the queue (sock_dequeue_err_skb).
	if next := so.PeekErr(); next != nil && next.Cause.Origin().IsICMPErr() {
		so.SetLastError(next.Err)
	} else if sockErr.Cause.Origin().IsICMPErr() {
		so.SetLastError(nil)
	}
	var payload []byte
	if sockErr.Payload != nil {
		payload = append(payload, sockErr.Payload.AsSlice()...)
		sockErr.Payload.Release()
	}
	flags := []string{}
	if len(payload) > size {
		payload = payload[:size]
		flags = append(flags, "MSG_TRUNC")
	}
	flags = append(flags, "MSG_ERRQUEUE")
	result := map[string]interface{}{"data": encode(payload)}
	if kind == recvPlain {
		return result, nil
	}
	for k, v := range endpointJSON(sockErr.Dst) {
		result[k] = v
	}
	if kind == recvMsg {
		var offender interface{}
		if len(sockErr.Offender.Addr) > 0 {
			offender = endpointJSON(sockErr.Offender)
		}
		var name interface{}
		if sockErr.Err != nil {
			name = errnoName(netstackErrno(sockErr.Err))
		}
		origin, ok := errOrigins[sockErr.Cause.Origin()]
		if !ok {
			origin = "NONE"
		}
		result["flags"] = flags
		result["errqueue"] = map[string]interface{}{
			"errno": name, "origin": origin, "type": int(sockErr.Cause.Type()),
			"code": int(sockErr.Cause.Code()), "info": int(sockErr.Cause.Info()), "data": 0,
			"offender": offender,
		}
		result["ancillary"] = map[string]interface{}{}
	}
	return result, nil
}

var ioctlRequests = map[string]bool{"FIONREAD": true, "SIOCOUTQ": true, "SIOCATMARK": true}

func (a *agent) ioctl(in args) (interface{}, reply) {
	s, failure := a.sock(in)
	if failure != nil {
		return nil, failure
	}
	request, failure := in.text("request")
	if failure != nil {
		return nil, failure
	}
	var opt tcpip.SockOptInt
	switch request {
	case "FIONREAD":
		opt = tcpip.ReceiveQueueSizeOption
	case "SIOCOUTQ":
		opt = tcpip.SendQueueSizeOption
	case "SIOCATMARK":
		return nil, unsupported("netstack keeps no urgent mark (SIOCATMARK)")
	default:
		return nil, unsupported("unknown request '%s'", request)
	}
	v, err := s.ep.GetSockOptInt(opt)
	if _, missing := err.(*tcpip.ErrUnknownProtocolOption); missing {
		return nil, unsupported("netstack's endpoint has no %s (%s)", request, err)
	}
	if err != nil {
		return nil, tcpipReply(err)
	}
	return v, nil
}

func (a *agent) fcntl(in args) (interface{}, reply) {
	s, failure := a.sock(in)
	if failure != nil {
		return nil, failure
	}
	cmd, failure := in.text("cmd")
	if failure != nil {
		return nil, failure
	}
	switch cmd {
	case "F_GETFL":
		if s.nonBlocking() {
			return []string{"O_NONBLOCK"}, nil
		}
		return []string{}, nil
	case "F_SETFL":
		bits, failure := in.names("flags", map[string]uint32{"O_NONBLOCK": unix.O_NONBLOCK}, false)
		if failure != nil {
			return nil, failure
		}
		s.mu.Lock()
		s.nonblock = bits&unix.O_NONBLOCK != 0
		s.mu.Unlock()
		return nil, nil
	}
	return nil, unsupported("unknown fcntl cmd '%s'", cmd)
}

func (a *agent) shutdownCall(in args) (interface{}, reply) {
	s, failure := a.sock(in)
	if failure != nil {
		return nil, failure
	}
	how, failure := in.text("how")
	if failure != nil {
		return nil, failure
	}
	var flags tcpip.ShutdownFlags
	switch how {
	case "SHUT_RD":
		flags = tcpip.ShutdownRead
	case "SHUT_WR":
		flags = tcpip.ShutdownWrite
	case "SHUT_RDWR":
		flags = tcpip.ShutdownRead | tcpip.ShutdownWrite
	default:
		return nil, unsupported("unknown how '%s'", how)
	}
	if err := s.ep.Shutdown(flags); err != nil {
		return nil, tcpipReply(err)
	}
	return nil, nil
}

func (a *agent) close(in args) (interface{}, reply) {
	s, failure := a.sock(in)
	if failure != nil {
		return nil, failure
	}
	a.mu.Lock()
	delete(a.sockets, s.handle)
	a.mu.Unlock()
	close(s.closed)
	// SO_LINGER with a time: close waits until the connection leaves FIN-WAIT-1,
	// CLOSING and LAST-ACK or the time passes (gVisor's Socket.Release); a zero time
	// resets in netstack's Close itself.
	entry, ch := waiter.NewChannelEntry(waiter.EventHUp | waiter.EventErr)
	s.wq.EventRegister(&entry)
	defer s.wq.EventUnregister(&entry)
	s.ep.Close()
	linger := s.ep.SocketOptions().GetLinger()
	if s.tcp && linger.Enabled && linger.Timeout != 0 {
		timer := time.NewTimer(linger.Timeout)
		defer timer.Stop()
		select {
		case <-ch:
		case <-timer.C:
		case <-a.stop:
		}
	}
	return nil, nil
}

var pollEvents = map[string]uint32{
	"POLLIN": uint32(waiter.EventIn), "POLLPRI": uint32(waiter.EventPri),
	"POLLOUT": uint32(waiter.EventOut), "POLLERR": uint32(waiter.EventErr),
	"POLLHUP": uint32(waiter.EventHUp), "POLLRDNORM": uint32(waiter.EventRdNorm),
	"POLLWRNORM": uint32(waiter.EventWrNorm),
}

var pollOrder = []string{"POLLIN", "POLLPRI", "POLLOUT", "POLLERR", "POLLHUP", "POLLRDNORM",
	"POLLWRNORM"}

func (a *agent) poll(in args) (interface{}, reply) {
	s, failure := a.sock(in)
	if failure != nil {
		return nil, failure
	}
	if raw, ok := in["events"]; ok {
		for _, missing := range []string{"POLLPRI", "POLLNVAL", "POLLRDBAND", "POLLWRBAND", "POLLMSG", "POLLRDHUP"} {
			if bytes.Contains(raw, []byte(`"`+missing+`"`)) {
				return nil, unsupported("netstack never reports %s on its endpoints (no urgent data, no band)", missing)
			}
		}
	}
	events, failure := in.names("events", pollEvents, false)
	if failure != nil {
		return nil, failure
	}
	timeoutMS, failure := in.integer("timeout_ms")
	if failure != nil {
		return nil, failure
	}
	// poll(2) always reports POLLERR and POLLHUP.
	mask := waiter.EventMask(events) | waiter.EventErr | waiter.EventHUp
	ready := func() []string {
		got := uint32(s.ep.Readiness(mask) & mask)
		names := []string{}
		for _, name := range pollOrder {
			if got&pollEvents[name] != 0 {
				names = append(names, name)
			}
		}
		return names
	}
	if names := ready(); len(names) > 0 || timeoutMS == 0 {
		return names, nil
	}
	w := a.startWait(s, mask)
	defer w.done()
	var deadline <-chan time.Time
	if timeoutMS > 0 {
		timer := time.NewTimer(time.Duration(timeoutMS) * time.Millisecond)
		defer timer.Stop()
		deadline = timer.C
	}
	for {
		if names := ready(); len(names) > 0 {
			return names, nil
		}
		timedOut, failure := a.block(w, deadline)
		if failure != nil {
			return nil, failure
		}
		if timedOut {
			return ready(), nil
		}
	}
}

func (a *agent) getsockname(in args) (interface{}, reply) {
	s, failure := a.sock(in)
	if failure != nil {
		return nil, failure
	}
	addr, err := s.ep.GetLocalAddress()
	if err != nil {
		return nil, tcpipReply(err)
	}
	return endpointJSON(addr), nil
}

func (a *agent) getpeername(in args) (interface{}, reply) {
	s, failure := a.sock(in)
	if failure != nil {
		return nil, failure
	}
	addr, err := s.ep.GetRemoteAddress()
	if err != nil {
		return nil, tcpipReply(err)
	}
	return endpointJSON(addr), nil
}

// linuxTCPState names netstack's TCP states as /proc/net/tcp does (gVisor's
// Socket.State); internal states are named by netstack.
func linuxTCPState(state tcp.EndpointState) string {
	switch state {
	case tcp.StateEstablished:
		return "ESTABLISHED"
	case tcp.StateSynSent:
		return "SYN_SENT"
	case tcp.StateSynRecv:
		return "SYN_RECV"
	case tcp.StateFinWait1:
		return "FIN_WAIT1"
	case tcp.StateFinWait2:
		return "FIN_WAIT2"
	case tcp.StateTimeWait:
		return "TIME_WAIT"
	case tcp.StateClose, tcp.StateInitial, tcp.StateBound, tcp.StateConnecting, tcp.StateError:
		return "CLOSE"
	case tcp.StateCloseWait:
		return "CLOSE_WAIT"
	case tcp.StateLastAck:
		return "LAST_ACK"
	case tcp.StateListen:
		return "LISTEN"
	case tcp.StateClosing:
		return "CLOSING"
	}
	return state.String()
}

func (a *agent) snapshot(args) (interface{}, reply) {
	a.mu.Lock()
	held := make([]*sock, 0, len(a.sockets))
	for _, s := range a.sockets {
		held = append(held, s)
	}
	a.mu.Unlock()
	sort.Slice(held, func(i, j int) bool { return held[i].handle < held[j].handle })
	sockets := []interface{}{}
	for _, s := range held {
		d := map[string]interface{}{"sock": s.handle, "type": "udp"}
		if s.tcp {
			d["type"] = "tcp"
			state := tcp.EndpointState(s.ep.State())
			d["state"] = linuxTCPState(state)
			d["netstack_state"] = state.String()
		}
		d["local"], d["peer"] = nil, nil
		if addr, err := s.ep.GetLocalAddress(); err == nil {
			d["local"] = endpointJSON(addr)
		}
		if addr, err := s.ep.GetRemoteAddress(); err == nil {
			d["peer"] = endpointJSON(addr)
		}
		sockets = append(sockets, d)
	}
	stats := a.stack.Stats()
	counters := map[string]interface{}{
		"ip.malformed_packets_received":       stats.IP.MalformedPacketsReceived.Value(),
		"ip.malformed_fragments_received":     stats.IP.MalformedFragmentsReceived.Value(),
		"ip.invalid_destination_addresses":    stats.IP.InvalidDestinationAddressesReceived.Value(),
		"tcp.invalid_segments_received":       stats.TCP.InvalidSegmentsReceived.Value(),
		"tcp.checksum_errors":                 stats.TCP.ChecksumErrors.Value(),
		"tcp.resets_sent":                     stats.TCP.ResetsSent.Value(),
		"tcp.retransmits":                     stats.TCP.Retransmits.Value(),
		"tcp.listen_overflow_syn_drop":        stats.TCP.ListenOverflowSynDrop.Value(),
		"tcp.listen_overflow_ack_drop":        stats.TCP.ListenOverflowAckDrop.Value(),
		"tcp.listen_overflow_syn_cookie_sent": stats.TCP.ListenOverflowSynCookieSent.Value(),
		"udp.unknown_port_errors":             stats.UDP.UnknownPortErrors.Value(),
		"udp.checksum_errors":                 stats.UDP.ChecksumErrors.Value(),
		"udp.receive_buffer_errors":           stats.UDP.ReceiveBufferErrors.Value(),
	}
	return map[string]interface{}{"sockets": sockets, "settings": a.facts, "counters": counters}, nil
}

func init() {
	log.SetFlags(0)
}
