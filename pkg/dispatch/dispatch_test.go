package dispatch

import (
	"bufio"
	"context"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/postback-dev/postback/pkg/delivery"
	postbackv1 "github.com/postback-dev/postback/proto/postback/v1"
)

// All traffic here goes to listeners on 127.0.0.1.

// rawReceiver accepts connections on 127.0.0.1, reads one request's head
// from each and hands the connection to answer, which may misbehave as a
// brand's server can; it returns the address.
func rawReceiver(t *testing.T, answer func(c net.Conn)) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	t.Cleanup(func() { close(done); ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				go func() { <-done; c.Close() }()
				if _, err := http.ReadRequest(bufio.NewReader(c)); err != nil {
					return
				}
				answer(c)
			}()
		}
	}()
	return ln.Addr().String()
}

// trickle writes chunk every interval until the write fails (the client
// hung up) or a minute has passed.
func trickle(c net.Conn, chunk []byte, interval time.Duration) {
	for end := time.Now().Add(time.Minute); time.Now().Before(end); {
		if _, err := c.Write(chunk); err != nil {
			return
		}
		time.Sleep(interval)
	}
}

func TestEveryRequestEndsByItsTimeoutWhateverTheReceiverDoes(t *testing.T) {
	const timeout = 300 * time.Millisecond
	cases := []struct {
		name        string
		answer      func(c net.Conn)
		success     bool
		reasonStart string
	}{
		{"the head never comes", func(c net.Conn) { time.Sleep(time.Minute) },
			false, "no response within 300ms"},
		{"the head comes a byte at a time", func(c net.Conn) {
			trickle(c, []byte("H"), 50*time.Millisecond)
		}, false, "no response within 300ms"},
		{"a 200 whose body trickles in a byte at a time, endlessly", func(c net.Conn) {
			_, _ = c.Write([]byte("HTTP/1.1 200 OK\r\nContent-Length: 1000000000\r\n\r\n"))
			trickle(c, []byte("x"), 20*time.Millisecond)
		}, false, "the response (status 200) did not finish within 300ms"},
		{"a 200 with no length on a connection that never closes", func(c net.Conn) {
			_, _ = c.Write([]byte("HTTP/1.1 200 OK\r\n\r\nOK"))
			time.Sleep(time.Minute)
		}, false, "the response (status 200) did not finish within 300ms"},
		{"a chunked 200 whose chunks never end", func(c net.Conn) {
			_, _ = c.Write([]byte("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"))
			trickle(c, []byte("1\r\nx\r\n"), 20*time.Millisecond)
		}, false, "the response (status 200) did not finish within 300ms"},
		{"a 200 with an endless fast body is judged on its first 64 KiB", func(c net.Conn) {
			_, _ = c.Write([]byte("HTTP/1.1 200 OK\r\nContent-Length: 100000000000\r\n\r\n"))
			trickle(c, []byte(strings.Repeat("y", 32<<10)), 0)
		}, true, ""},
	}
	d := New(Options{Allow: []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}})
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			addr := rawReceiver(t, tc.answer)
			ep := &postbackv1.Endpoint{Id: "ep-1", Url: "http://" + addr + "/pb", Timeout: durationpb.New(timeout)}
			job := &delivery.Job{DeliveryID: "dlv-1", EndpointID: "ep-1", Method: http.MethodPost, URL: ep.Url, Body: []byte(`{"ActionId":"ACT-778899"}`)}
			began := time.Now()
			got := make(chan Result, 1)
			go func() { got <- d.Send(context.Background(), ep, job) }()
			var res Result
			select {
			case res = <-got:
			case <-time.After(timeout + 10*time.Second): // a hang, not a slow machine
				t.Fatalf("Send still held the worker %s after its %s timeout", time.Since(began)-timeout, timeout)
			}
			if res.Success != tc.success || res.Final {
				t.Fatalf("success %v final %v (reason %q), want success %v, retryable", res.Success, res.Final, res.Reason, tc.success)
			}
			if !strings.HasPrefix(res.Reason, tc.reasonStart) {
				t.Errorf("reason %q, want it to start with %q", res.Reason, tc.reasonStart)
			}
			took := res.Attempt.GetDuration().AsDuration()
			if !tc.success && took < timeout {
				t.Errorf("the attempt records %s, less than the %s it took to time out", took, timeout)
			}
			if held := time.Since(began); took > held {
				t.Errorf("the attempt records %s, more than the %s Send took", took, held)
			}
			if !tc.success && res.Attempt.Error != res.Reason {
				t.Errorf("attempt error %q, want the reason %q", res.Attempt.Error, res.Reason)
			}
		})
	}
}
