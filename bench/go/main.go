// bench/go/main.go
// Channel workloads A-F of issue 2 in Go: the baseline for conch.
//
//	conch_bench_go <A|B|C|D|E|F> <gomaxprocs> [n]
//
// Same workloads, sizes, warm-up (n/10 first, then a GC) and output line as
// bench/chan_workloads.cpp; standard library only. Build (no module needed):
//
//	GO111MODULE=off GOCACHE=<build>/go-cache go build -o <build>/conch_bench_go bench/go/main.go
//
// Prints: bench=<name> impl=go<p> param=threads:<p>/n:<n> value=<v> unit=<u> rss_kb=<peak> cpu_ms=<user+sys>
package main

import (
	"fmt"
	"os"
	"runtime"
	"strconv"
	"sync"
	"syscall"
	"time"
)

func rangeSum(from, n int64) int64 { return n*from + n*(n-1)/2 }

func expectSum(what string, got, want int64) {
	if got != want {
		fmt.Fprintf(os.Stderr, "%s: checksum mismatch: got %d, want %d\n", what, got, want)
		os.Exit(1)
	}
}

// A: ping-pong over two unbuffered channels.
func pingpong(n int64) float64 {
	ping := make(chan int64)
	pong := make(chan int64)
	done := make(chan struct{})
	go func() {
		for v := range ping {
			pong <- v
		}
		close(done)
	}()
	var sum int64
	t0 := time.Now()
	for i := int64(0); i < n; i++ {
		ping <- i
		sum += <-pong
	}
	ns := float64(time.Since(t0).Nanoseconds())
	close(ping)
	<-done
	expectSum("A", sum, rangeSum(0, n))
	return ns / float64(n)
}

// B, C: producers and consumers over one buffered channel.
func producersConsumers(n int64, producers, consumers, capacity int) float64 {
	c := make(chan int64, capacity)
	sums := make(chan int64, consumers)
	var wg sync.WaitGroup
	t0 := time.Now()
	for k := 0; k < consumers; k++ {
		go func() {
			var s int64
			for v := range c {
				s += v
			}
			sums <- s
		}()
	}
	share := n / int64(producers)
	wg.Add(producers)
	for p := 0; p < producers; p++ {
		from := share * int64(p)
		count := share
		if p == producers-1 {
			count = n - from
		}
		go func() {
			for i := int64(0); i < count; i++ {
				c <- from + i
			}
			wg.Done()
		}()
	}
	go func() { wg.Wait(); close(c) }()
	var sum int64
	for k := 0; k < consumers; k++ {
		sum += <-sums
	}
	ns := float64(time.Since(t0).Nanoseconds())
	what := "C"
	if producers == 1 {
		what = "B"
	}
	expectSum(what, sum, rangeSum(0, n))
	return ns / float64(n)
}

// D: one consumer selecting over two buffered channels.
func selectTwo(n int64) float64 {
	a := make(chan int64, 1024)
	b := make(chan int64, 1024)
	half := n / 2
	total := make(chan int64)
	t0 := time.Now()
	go func() {
		var sum int64
		ra, rb := a, b
		for ra != nil || rb != nil {
			select {
			case v, ok := <-ra:
				if !ok {
					ra = nil
				} else {
					sum += v
				}
			case v, ok := <-rb:
				if !ok {
					rb = nil
				} else {
					sum += v
				}
			}
		}
		total <- sum
	}()
	go func() {
		for i := int64(0); i < half; i++ {
			a <- i
		}
		close(a)
	}()
	go func() {
		for i := half; i < n; i++ {
			b <- i
		}
		close(b)
	}()
	sum := <-total
	ns := float64(time.Since(t0).Nanoseconds())
	expectSum("D", sum, rangeSum(0, n))
	return ns / float64(n)
}

// E: spawn n goroutines that each send one value; a collector drains.
func spawnMany(n int64) float64 {
	c := make(chan int64, 1<<20)
	total := make(chan int64)
	t0 := time.Now()
	go func() {
		var sum int64
		for i := int64(0); i < n; i++ {
			sum += <-c
		}
		total <- sum
	}()
	for i := int64(0); i < n; i++ {
		go func(v int64) { c <- v }(i)
	}
	sum := <-total
	ns := float64(time.Since(t0).Nanoseconds())
	expectSum("E", sum, rangeSum(0, n))
	return ns / float64(n)
}

// F: n concurrent 1 ms timeouts.
func timeouts(n int64) float64 {
	var wg sync.WaitGroup
	wg.Add(int(n))
	t0 := time.Now()
	for i := int64(0); i < n; i++ {
		go func() {
			<-time.After(time.Millisecond)
			wg.Done()
		}()
	}
	wg.Wait()
	return float64(time.Since(t0).Nanoseconds()) / 1e6 // total ms
}

type workload struct {
	name     string
	defaultN int64
	unit     string
	run      func(int64) float64
}

var workloads = map[string]workload{
	"A": {"A_pingpong", 1000000, "ns/op", pingpong},
	"B": {"B_spsc", 10000000, "ns/op", func(n int64) float64 { return producersConsumers(n, 1, 1, 1024) }},
	"C": {"C_mpmc", 10000000, "ns/op", func(n int64) float64 { return producersConsumers(n, 4, 4, 1024) }},
	"D": {"D_select", 5000000, "ns/op", selectTwo},
	"E": {"E_spawn", 1000000, "ns/op", spawnMany},
	"F": {"F_timeouts", 100000, "ms", timeouts},
}

func usage() {
	fmt.Fprintln(os.Stderr, "usage: conch_bench_go <A|B|C|D|E|F> <gomaxprocs> [n]")
	os.Exit(2)
}

func main() {
	if len(os.Args) < 3 {
		usage()
	}
	w, ok := workloads[os.Args[1]]
	procs, err := strconv.Atoi(os.Args[2])
	if !ok || err != nil || procs < 1 {
		usage()
	}
	n := w.defaultN
	if len(os.Args) > 3 {
		if n, err = strconv.ParseInt(os.Args[3], 10, 64); err != nil || n < 2 {
			usage()
		}
	}
	runtime.GOMAXPROCS(procs)
	warm := n / 10
	if warm < 2 {
		warm = 2
	}
	w.run(warm) // warm-up
	runtime.GC()
	value := w.run(n)
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	cpuMs := (ru.Utime.Nano() + ru.Stime.Nano()) / 1000000
	fmt.Printf("bench=%s impl=go%d param=threads:%d/n:%d value=%.1f unit=%s rss_kb=%d cpu_ms=%d\n",
		w.name, procs, procs, n, value, w.unit, ru.Maxrss, cpuMs)
}
