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
// Prints: bench=<name> impl=go<p> param=threads:<p>/n:<n> value=<wall> unit=<u> rss_kb=<peak> cpu=<cpu>
// (cpu: the process's CPU time over the timed region, in the unit of value).
package main

import (
	"fmt"
	"os"
	"runtime"
	"strconv"
	"sync"
	"syscall"
	"time"
	"unsafe"
)

// processCPUNs is the CPU time of all the process's threads, in ns
// (clock_gettime(CLOCK_PROCESS_CPUTIME_ID), as the C++ programs measure it).
func processCPUNs() float64 {
	var ts syscall.Timespec
	const clockProcessCPUTimeID = 2
	syscall.Syscall(syscall.SYS_CLOCK_GETTIME, clockProcessCPUTimeID, uintptr(unsafe.Pointer(&ts)), 0)
	return float64(ts.Sec)*1e9 + float64(ts.Nsec)
}

// sample is one measurement of the timed region: wall and process CPU time.
type sample struct{ wall, cpu float64 }

type stopwatch struct {
	wall0 time.Time
	cpu0  float64
}

func startWatch() stopwatch { return stopwatch{time.Now(), processCPUNs()} }

func (w stopwatch) elapsed() sample {
	return sample{float64(time.Since(w.wall0).Nanoseconds()), processCPUNs() - w.cpu0}
}

func perOp(s sample, n int64) sample { return sample{s.wall / float64(n), s.cpu / float64(n)} }

func rangeSum(from, n int64) int64 { return n*from + n*(n-1)/2 }

func expectSum(what string, got, want int64) {
	if got != want {
		fmt.Fprintf(os.Stderr, "%s: checksum mismatch: got %d, want %d\n", what, got, want)
		os.Exit(1)
	}
}

// A: ping-pong over two unbuffered channels.
func pingpong(n int64) sample {
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
	watch := startWatch()
	for i := int64(0); i < n; i++ {
		ping <- i
		sum += <-pong
	}
	elapsed := watch.elapsed()
	close(ping)
	<-done
	expectSum("A", sum, rangeSum(0, n))
	return perOp(elapsed, n)
}

// B, C: producers and consumers over one buffered channel.
func producersConsumers(n int64, producers, consumers, capacity int) sample {
	c := make(chan int64, capacity)
	sums := make(chan int64, consumers)
	var wg sync.WaitGroup
	watch := startWatch()
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
	elapsed := watch.elapsed()
	what := "C"
	if producers == 1 {
		what = "B"
	}
	expectSum(what, sum, rangeSum(0, n))
	return perOp(elapsed, n)
}

// D: one consumer selecting over two buffered channels.
func selectTwo(n int64) sample {
	a := make(chan int64, 1024)
	b := make(chan int64, 1024)
	half := n / 2
	total := make(chan int64)
	watch := startWatch()
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
	elapsed := watch.elapsed()
	expectSum("D", sum, rangeSum(0, n))
	return perOp(elapsed, n)
}

// E: spawn n goroutines that each send one value; a collector drains.
func spawnMany(n int64) sample {
	c := make(chan int64, 1<<20)
	total := make(chan int64)
	watch := startWatch()
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
	elapsed := watch.elapsed()
	expectSum("E", sum, rangeSum(0, n))
	return perOp(elapsed, n)
}

// F: n concurrent 1 ms timeouts.
func timeouts(n int64) sample {
	var wg sync.WaitGroup
	wg.Add(int(n))
	watch := startWatch()
	for i := int64(0); i < n; i++ {
		go func() {
			<-time.After(time.Millisecond)
			wg.Done()
		}()
	}
	wg.Wait()
	elapsed := watch.elapsed()
	return sample{elapsed.wall / 1e6, elapsed.cpu / 1e6} // total ms
}

type workload struct {
	name     string
	defaultN int64
	unit     string
	run      func(int64) sample
}

var workloads = map[string]workload{
	"A": {"A_pingpong", 1000000, "ns/op", pingpong},
	"B": {"B_spsc", 10000000, "ns/op", func(n int64) sample { return producersConsumers(n, 1, 1, 1024) }},
	"C": {"C_mpmc", 10000000, "ns/op", func(n int64) sample { return producersConsumers(n, 4, 4, 1024) }},
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
	fmt.Printf("bench=%s impl=go%d param=threads:%d/n:%d value=%.1f unit=%s rss_kb=%d cpu=%.1f\n",
		w.name, procs, procs, n, value.wall, w.unit, ru.Maxrss, value.cpu)
}
