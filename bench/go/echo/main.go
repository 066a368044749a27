// bench/go/echo/main.go
// Socket echo peer for bench/run_sockets.sh: Go's net package, one goroutine per connection.
//
//	conch_bench_sock_go_server <tcp:PORT|unix:PATH>      prints "ready" once listening
//
// What a Go user writes: Accept in a loop, a goroutine per connection that
// reads into its own 64 KiB buffer and writes what it read back (Write
// returns once all of it is written, which is the backpressure). It checks
// nothing: the load generator compares every echoed byte. GOMAXPROCS is the
// Go default: the CPUs the process may run on (one, as run_sockets.sh pins
// every server to CPU 0). Standard library only; built without modules:
//
//	GO111MODULE=off GOCACHE=<build>/go-cache go build -o <bin> bench/go/echo/main.go
package main

import (
	"fmt"
	"net"
	"os"
	"strings"
)

func serve(c net.Conn) {
	defer c.Close()
	buf := make([]byte, 64<<10)
	for {
		n, err := c.Read(buf)
		if n > 0 {
			if _, werr := c.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil { // io.EOF when the peer closed; anything else ends the connection too
			return
		}
	}
}

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: conch_bench_sock_go_server <tcp:PORT|unix:PATH>")
		os.Exit(2)
	}
	spec := os.Args[1]
	var ln net.Listener
	var err error
	switch {
	case strings.HasPrefix(spec, "tcp:"):
		ln, err = net.Listen("tcp", "127.0.0.1:"+spec[len("tcp:"):])
	case strings.HasPrefix(spec, "unix:"):
		path := spec[len("unix:"):]
		if !strings.HasPrefix(path, "@") { // a stale socket file from an earlier run
			os.Remove(path)
		}
		ln, err = net.Listen("unix", path)
	default:
		err = fmt.Errorf("bad address %q: want tcp:PORT or unix:PATH", spec)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "conch_bench_sock_go_server:", err)
		os.Exit(1)
	}
	fmt.Println("ready")
	for {
		c, err := ln.Accept()
		if err != nil {
			fmt.Fprintln(os.Stderr, "conch_bench_sock_go_server: accept:", err)
			os.Exit(1)
		}
		go serve(c) // net's TCP connections have TCP_NODELAY set by default, like the C servers'
	}
}
