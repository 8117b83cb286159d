// Command healthcheck is the container health check of the Postback images,
// which have no shell and no curl: it GETs one path of the process's own
// HTTP listener and exits 0 on a 2xx answer, 1 otherwise.
//
//	healthcheck [path|url]     default /readyz
//
// A bare path is resolved against POSTBACK_HTTP_ADDR (default
// 127.0.0.1:7071); an unspecified host (0.0.0.0, ::, empty) becomes loopback.
// Docker Compose runs it with `test: ["CMD", "/healthcheck", "/readyz"]`;
// Kubernetes does not need it (httpGet probes).
//
// It is its own module with no dependencies (standard library only) so every
// image can build it without the workspace.
package main

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"time"
)

func main() {
	target := "/readyz"
	if len(os.Args) > 1 {
		target = os.Args[1]
	}
	url, err := resolve(target, os.Getenv("POSTBACK_HTTP_ADDR"))
	if err != nil {
		fmt.Fprintln(os.Stderr, "healthcheck:", err)
		os.Exit(2)
	}
	if err := check(url, 3*time.Second); err != nil {
		fmt.Fprintln(os.Stderr, "healthcheck:", err)
		os.Exit(1)
	}
}

// resolve turns a path into a URL on the process's own HTTP listener.
func resolve(target, httpAddr string) (string, error) {
	if strings.HasPrefix(target, "http://") || strings.HasPrefix(target, "https://") {
		return target, nil
	}
	if !strings.HasPrefix(target, "/") {
		return "", fmt.Errorf("want a path starting with / or an http(s) URL, got %q", target)
	}
	if httpAddr == "" {
		httpAddr = "127.0.0.1:7071"
	}
	host, port, err := net.SplitHostPort(httpAddr)
	if err != nil {
		return "", fmt.Errorf("POSTBACK_HTTP_ADDR %q: %w", httpAddr, err)
	}
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		host = "127.0.0.1"
	}
	return "http://" + net.JoinHostPort(host, port) + target, nil
}

func check(url string, timeout time.Duration) error {
	c := &http.Client{Timeout: timeout}
	resp, err := c.Get(url)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("%s: %s: %s", url, resp.Status, strings.TrimSpace(string(body)))
	}
	return nil
}
