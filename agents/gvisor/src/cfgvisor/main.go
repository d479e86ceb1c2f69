// Command cf-gvisor-agent puts gVisor's netstack under test: it runs netstack on the
// lab's TAP device and performs the calls of docs/agent-protocol.md on netstack's
// endpoint API, reading JSON lines on stdin and answering on stdout.
package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"os"
	"sync"
)

// request is one line of the tester.
type request struct {
	ID         *int64                     `json:"id"`
	Call       string                     `json:"call"`
	Args       map[string]json.RawMessage `json:"args"`
	Background bool                       `json:"background"`
}

// writer sends one response per line; its mutex keeps lines from interleaving.
type writer struct {
	mu  sync.Mutex
	out *bufio.Writer
}

func (w *writer) send(id int64, reply map[string]interface{}) {
	reply["id"] = id
	line, err := json.Marshal(reply)
	if err != nil {
		line, _ = json.Marshal(map[string]interface{}{"id": id, "error": "cannot encode: " + err.Error()})
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	w.out.Write(line)
	w.out.WriteByte('\n')
	w.out.Flush()
}

func main() {
	log.SetOutput(os.Stderr)
	log.SetPrefix("cf-gvisor-agent: ")
	log.SetFlags(0)
	// Responses only on fd 1 (docs/agent-protocol.md, "Transport"): the stack logs to stderr.
	out := &writer{out: bufio.NewWriter(os.Stdout)}
	cfg, err := configFromEnv()
	if err != nil {
		log.Fatalf("configuration: %v", err)
	}
	a, err := newAgent(cfg)
	if err != nil {
		log.Fatalf("stack: %v", err)
	}
	serve(a, os.Stdin, out)
	a.shutdown()
	os.Exit(0)
}

// serve reads requests until stdin ends: foreground calls in order, each background
// call on a goroutine of its own.
func serve(a *agent, in io.Reader, out *writer) {
	reader := bufio.NewReaderSize(in, 1<<20)
	var background sync.WaitGroup
	for {
		line, err := reader.ReadBytes('\n')
		if len(line) > 0 {
			handleLine(a, line, out, &background)
		}
		if err != nil {
			break
		}
	}
	// The end of input stops every waiting call; they answer before the agent exits.
	a.stopAll()
	background.Wait()
}

func handleLine(a *agent, line []byte, out *writer, background *sync.WaitGroup) {
	var req request
	if err := json.Unmarshal(line, &req); err != nil || req.ID == nil || req.Call == "" {
		var id int64 = -1
		if req.ID != nil {
			id = *req.ID
		}
		msg := "malformed request"
		if err != nil {
			msg += ": " + err.Error()
		}
		out.send(id, map[string]interface{}{"error": msg})
		return
	}
	if req.Args == nil {
		req.Args = map[string]json.RawMessage{}
	}
	run := func() {
		out.send(*req.ID, a.dispatch(req.Call, args(req.Args), req.Background))
	}
	if req.Background {
		background.Add(1)
		go func() {
			defer background.Done()
			run()
		}()
		return
	}
	run()
}

// dispatch performs one call and turns what it returns into a response.
func (a *agent) dispatch(call string, arguments args, background bool) (reply map[string]interface{}) {
	defer func() {
		if p := recover(); p != nil {
			log.Printf("%s: panic: %v", call, p)
			reply = map[string]interface{}{"error": fmt.Sprintf("%s: panic: %v", call, p)}
		}
	}()
	handler, ok := a.calls()[call]
	if !ok {
		return unsupported("unknown call %q", call)
	}
	result, failure := handler(arguments)
	if failure != nil {
		return failure
	}
	return map[string]interface{}{"result": result}
}
