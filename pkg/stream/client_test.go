package stream

import "testing"

func TestRedactURLsHidesEveryPasswordOfAServerList(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"nats://127.0.0.1:4222", "nats://127.0.0.1:4222"},
		{"nats://sender:s3cret@n1:4222,nats://sender:s3cret@n2:4222", "nats://sender:xxxxx@n1:4222,nats://sender:xxxxx@n2:4222"},
		{"nats://n1:4222, tls://renderer:pw@n2:4222", "nats://n1:4222,tls://renderer:xxxxx@n2:4222"},
		{"nats://tok3n-value@n1:4222", "nats://xxxxx@n1:4222"}, // a token
	} {
		got := RedactURLs(tc.in)
		if got != tc.want {
			t.Errorf("RedactURLs(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}
