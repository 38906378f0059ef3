package strictjson

import (
	"encoding/json"
	"errors"
	"testing"
)

type order struct {
	ID    int `json:"id"`
	Lines []struct {
		SKU string `json:"sku"`
	} `json:"lines"`
}

func TestUnmarshal(t *testing.T) {
	for _, tc := range []struct {
		body   string
		ok     bool // strict accepts
		loose  bool // json.Unmarshal accepts
		target error
	}{
		{`{"id":1,"lines":[{"sku":"a"}]}`, true, true, nil},
		{` {"id":1} `, true, true, nil},
		{`{}`, true, true, nil}, // missing fields are not a shape error: encoding/json has no required fields
		{`{"id":1,"extra":true}`, false, true, nil},
		{`{"id":1,"lines":[{"sku":"a","qty":2}]}`, false, true, nil}, // unknown field at depth
		{`{"ID":1}`, true, true, nil},                                // encoding/json matches names case-insensitively
		{`null`, false, true, ErrNull},
		{" null\n", false, true, ErrNull},
		{`{"id":"one"}`, false, false, nil},
		{`[1,2]`, false, false, nil},
		{`{"id":1} {"id":2}`, false, false, ErrTrailingData},
		{`{"id":1} x`, false, false, ErrTrailingData},
		{``, false, false, nil},
		{`   `, false, false, nil},
		{`{"id":1`, false, false, nil},
	} {
		var strict, loose order
		err := Unmarshal([]byte(tc.body), &strict)
		if (err == nil) != tc.ok {
			t.Errorf("Unmarshal(%q) = %v, want ok=%v", tc.body, err, tc.ok)
		}
		if tc.target != nil && !errors.Is(err, tc.target) {
			t.Errorf("Unmarshal(%q) = %v, want %v", tc.body, err, tc.target)
		}
		if lerr := json.Unmarshal([]byte(tc.body), &loose); (lerr == nil) != tc.loose {
			t.Errorf("json.Unmarshal(%q) = %v, want ok=%v", tc.body, lerr, tc.loose)
		}
	}
}

func FuzzUnmarshal(f *testing.F) {
	f.Add(`{"id":1,"lines":[{"sku":"a"}]}`)
	f.Add(`null`)
	f.Add(`{"id":1} {}`)
	f.Fuzz(func(t *testing.T, body string) {
		var strict, loose order
		if Unmarshal([]byte(body), &strict) == nil && json.Unmarshal([]byte(body), &loose) != nil {
			t.Fatalf("strict accepted %q, which json.Unmarshal refuses", body)
		}
	})
}
