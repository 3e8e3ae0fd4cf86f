package m365

import "testing"

func TestPeekNextLink(t *testing.T) {
	for body, want := range map[string]string{
		`{"@odata.context":"c","@odata.nextLink":"https://g.example/v1.0/users?$skiptoken=a\/b","value":[{"id":"1"}]}`: "https://g.example/v1.0/users?$skiptoken=a/b",
		`{"@odata.context":"c","value":[{"id":"1"}],"@odata.nextLink":"https://g.example/next"}`:                       "https://g.example/next",
		`{"@odata.context":"c","value":[{"id":"1","x":{"@odata.nextLink":"https://evil.example/"}}]}`:                  "",
		`{"@odata.context":"c","@odata.deltaLink":"https://g.example/d","value":[]}`:                                   "",
		`{"@odata.nextLink":"https://g.example/cut`:                                                                    "",
	} {
		if got := peekNextLink([]byte(body)); got != want {
			t.Errorf("%s: got %q, want %q", body, got, want)
		}
	}
}
