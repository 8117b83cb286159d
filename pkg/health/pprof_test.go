package health

import (
	"net/http"
	"net/http/httptest"
	"testing"
)

func TestPProfIsServedOnlyWhenMounted(t *testing.T) {
	for _, on := range []bool{false, true} {
		mux := http.NewServeMux()
		if on {
			MountPProf(mux)
		}
		srv := httptest.NewServer(New().Handler(mux)) // on 127.0.0.1
		want := http.StatusNotFound
		if on {
			want = http.StatusOK
		}
		for _, path := range []string{"/debug/pprof/", "/debug/pprof/allocs", "/debug/pprof/cmdline",
			"/debug/pprof/symbol", "/debug/pprof/profile?seconds=1"} {
			resp, err := http.Get(srv.URL + path)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != want {
				t.Errorf("pprof mounted %v: GET %s = %d, want %d", on, path, resp.StatusCode, want)
			}
		}
		srv.Close()
	}
}
