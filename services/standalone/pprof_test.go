package standalone

import (
	"net/http"
	"testing"
)

func TestPProfIsOnTheHTTPAddressOnlyWhenConfigured(t *testing.T) {
	for _, on := range []bool{false, true} {
		h := start(t, "", func(c *Config) { c.PProf = on; c.Targets = "retry" })
		want := http.StatusNotFound
		if on {
			want = http.StatusOK
		}
		for _, path := range []string{"/debug/pprof/", "/debug/pprof/allocs"} {
			resp, err := http.Get("http://" + h.addrs.HTTP.String() + path)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != want {
				t.Errorf("PProf %v: GET %s = %d, want %d", on, path, resp.StatusCode, want)
			}
		}
		h.stop()
	}
}
