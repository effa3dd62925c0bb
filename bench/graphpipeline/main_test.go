package main

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"os"
	"regexp"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
)

// TestMain makes the test binary the fake's child process when serveEnv asks,
// as the program does, and fails the tests when goroutines outlive them.
func TestMain(m *testing.M) {
	if spec, ok := os.LookupEnv(serveEnv); ok {
		if err := serveSpec(spec, os.Stdin, os.Stdout); err != nil {
			fmt.Fprintln(os.Stderr, "graphpipeline child:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	goleak.VerifyTestMain(m)
}

// figure finds a number printed after prefix.
func figure(t *testing.T, out, prefix string) float64 {
	t.Helper()
	m := regexp.MustCompile(regexp.QuoteMeta(prefix) + `([0-9.]+)`).FindStringSubmatch(out)
	require.NotNil(t, m, "no %q in:\n%s", prefix, out)
	f, err := strconv.ParseFloat(m[1], 64)
	require.NoError(t, err)
	return f
}

// TestPipeline runs the program on a small mailbox with the fake in a child
// process, with and without $batch, and checks the figures it prints add up.
func TestPipeline(t *testing.T) {
	for _, batch := range []int{20, 1} {
		t.Run(fmt.Sprint("batch=", batch), func(t *testing.T) {
			var out bytes.Buffer
			require.NoError(t, run(options{n: 60, batch: batch, stall: 30 * time.Second}, &out))
			text := out.String()
			t.Log(text)
			assert.Equal(t, 60.0, figure(t, text, "\n"), "messages tracked")
			assert.Contains(t, text, fmt.Sprintf("batch %d, page size 100, in flight 4", batch))
			sent, batches := figure(t, text, "HTTP requests sent: "), figure(t, text, "per message), ")
			counted := figure(t, text, "the fake counted ")
			assert.GreaterOrEqual(t, counted, 61.0, "60 downloads and at least one delta page, each $batch item counted")
			if batch == 20 {
				assert.Equal(t, 3.0, batches, "60 messages in three $batch")
				assert.Less(t, sent, 10.0, "a $batch is one request")
			} else {
				assert.Equal(t, 0.0, batches)
				assert.Equal(t, counted, sent, "without $batch the connector and the fake count alike")
			}
			assert.Greater(t, figure(t, text, "peak RSS "), 1.0)
			assert.Contains(t, text, "the fake's process: ", "the fake ran apart")
		})
	}
}

// TestPipelineInProcessWithRTT runs the fake in this process behind the
// latency relay: the sync takes at least its round trips.
func TestPipelineInProcessWithRTT(t *testing.T) {
	var out bytes.Buffer
	const rtt = 30 * time.Millisecond
	require.NoError(t, run(options{n: 40, inProcess: true, rtt: rtt, stall: 30 * time.Second}, &out))
	text := out.String()
	t.Log(text)
	assert.Contains(t, text, "round trip +30ms")
	assert.Contains(t, text, "(pipeline and fake together)")
	sent := figure(t, text, "HTTP requests sent: ")
	assert.GreaterOrEqual(t, figure(t, text, "wall "), sent*rtt.Seconds(), "one fetch has one request in flight")
}

func TestServeSpecRefusesNonsense(t *testing.T) {
	for _, spec := range []string{"", "ten 0s", "10", "10 soon"} {
		assert.Error(t, serveSpec(spec, bytes.NewReader(nil), io.Discard), spec)
	}
}

// TestLatencyDelaysRoundTrips checks the relay passes bytes whole and in
// order, each exchange taking at least the round trip.
func TestLatencyDelaysRoundTrips(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	echoed := make(chan struct{})
	go func() {
		defer close(echoed)
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		_, _ = io.Copy(c, c)
	}()
	const rtt = 40 * time.Millisecond
	l, err := startLatency(ln.Addr().String(), rtt)
	require.NoError(t, err)
	c, err := net.Dial("tcp", l.addr())
	require.NoError(t, err)

	payload := bytes.Repeat([]byte("0123456789abcdef"), 64<<10) // 1 MiB
	for range 3 {
		start := time.Now()
		go func() { _, _ = c.Write(payload) }()
		got := make([]byte, len(payload))
		_, err := io.ReadFull(c, got)
		require.NoError(t, err)
		assert.GreaterOrEqual(t, time.Since(start), rtt)
		assert.True(t, bytes.Equal(payload, got), "bytes relayed whole and in order")
	}
	require.NoError(t, l.close())
	<-echoed // closing the relay ended the server's side too
	_ = c.Close()
}
