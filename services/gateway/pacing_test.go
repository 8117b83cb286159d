package gateway

import (
	"testing"
	"time"

	postbackv1 "github.com/postback-dev/postback/proto/postback/v1"
)

func TestAdaptivePacingCanBeTurnedOffAndOnAgain(t *testing.T) {
	s, _ := keyedServer(t, time.Hour)
	ep, err := s.CreateEndpoint(operator(), &postbackv1.CreateEndpointRequest{Endpoint: &postbackv1.Endpoint{
		AccountId: "brand-1", EventType: "action_lifecycle", Url: "https://brand.example/pb",
		MaxRequestsPerSecond: 200, AdaptivePacingDisabled: true,
	}})
	if err != nil {
		t.Fatal(err)
	}
	if !ep.AdaptivePacingDisabled {
		t.Fatal("create dropped adaptive_pacing_disabled")
	}
	for _, tc := range []struct {
		name  string
		in    *postbackv1.Endpoint
		paths []string
		want  bool
	}{
		{"a mask naming it turns pacing back on", &postbackv1.Endpoint{}, []string{"adaptive_pacing_disabled"}, false},
		{"a mask naming another field leaves it", &postbackv1.Endpoint{AdaptivePacingDisabled: true, MaxRequestsPerSecond: 100}, []string{"max_requests_per_second"}, false},
		{"a mask naming it turns pacing off", &postbackv1.Endpoint{AdaptivePacingDisabled: true}, []string{"adaptive_pacing_disabled"}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := tc.in
			in.Id = ep.Id
			got, err := update(s, in, tc.paths...)
			if err != nil {
				t.Fatal(err)
			}
			if got.AdaptivePacingDisabled != tc.want {
				t.Fatalf("adaptive_pacing_disabled = %v, want %v", got.AdaptivePacingDisabled, tc.want)
			}
			read, err := s.GetEndpoint(operator(), &postbackv1.GetEndpointRequest{Id: ep.Id})
			if err != nil {
				t.Fatal(err)
			}
			if read.AdaptivePacingDisabled != tc.want {
				t.Fatalf("stored adaptive_pacing_disabled = %v, want %v", read.AdaptivePacingDisabled, tc.want)
			}
		})
	}
}
