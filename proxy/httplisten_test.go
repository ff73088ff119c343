package proxy

import "testing"

// TestHTTPNetwork: 0.0.0.0:P and [::]:P listed together listen one family
// each (Go's "tcp" on a wildcard is one dual-stack socket, so the second
// bind failed with "address already in use"); anything else keeps "tcp".
// Tests may bind loopback only, so the wildcard pair itself is not bound
// here.
func TestHTTPNetwork(t *testing.T) {
	for _, tc := range []struct {
		all  []string
		want []string
	}{
		{[]string{"0.0.0.0:6970", "[::]:6970"}, []string{"tcp4", "tcp6"}},
		{[]string{"[::]:6970", "0.0.0.0:6970"}, []string{"tcp6", "tcp4"}},
		{[]string{"[::]:6970"}, []string{"tcp"}},
		{[]string{"0.0.0.0:6970"}, []string{"tcp"}},
		{[]string{"0.0.0.0:6970", "[::]:6971"}, []string{"tcp", "tcp"}},
		{[]string{"127.0.0.1:0", "[::1]:0"}, []string{"tcp", "tcp"}},
		{[]string{"[::ffff:10.0.0.1]:80", "[2001:db8::1]:80"}, []string{"tcp4", "tcp6"}},
	} {
		for i, a := range tc.all {
			if got := httpNetwork(a, tc.all); got != tc.want[i] {
				t.Errorf("httpNetwork(%q, %q) = %q, want %q", a, tc.all, got, tc.want[i])
			}
		}
	}
}
