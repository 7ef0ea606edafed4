package api

import (
	"strings"
	"testing"
	"time"

	"github.com/convead/chat-server/chat"
	"github.com/convead/chat-server/store"
)

func TestListQueryOf(t *testing.T) {
	cursor := store.EncodeCursor(store.Conversation{ID: "c1", CreatedAt: time.Unix(1700000000, 0)})
	cases := []struct {
		name, query string
		want        chat.ListQuery
		err         string
	}{
		{"defaults", "", chat.ListQuery{Limit: chat.DefaultListLimit}, ""},
		{"every filter", "status=pending&manager_id=m1&visitor_id=v1&limit=2&cursor=" + cursor,
			chat.ListQuery{Status: "pending", ManagerID: "m1", VisitorID: "v1", Limit: 2, Cursor: cursor}, ""},
		{"limit 0 is the default", "limit=0", chat.ListQuery{Limit: chat.DefaultListLimit}, ""},
		{"largest limit", "limit=200", chat.ListQuery{Limit: chat.MaxListLimit}, ""},
		{"limit too large", "limit=201", chat.ListQuery{}, "invalid_limit"},
		{"negative limit", "limit=-1", chat.ListQuery{}, "invalid_limit"},
		{"limit not a number", "limit=ten", chat.ListQuery{}, "invalid_limit"},
		{"unknown status", "status=archived", chat.ListQuery{}, "invalid_status"},
		{"status with another case", "status=Open", chat.ListQuery{}, "invalid_status"},
		{"cursor not base64", "cursor=%21%21", chat.ListQuery{}, "invalid_cursor"},
		{"cursor too short", "cursor=AAAA", chat.ListQuery{}, "invalid_cursor"},
		{"cursor too long", "cursor=" + strings.Repeat("A", 200), chat.ListQuery{}, "invalid_cursor"},
		{"bad manager id", "manager_id=a%2Fb", chat.ListQuery{}, "invalid_manager_id"},
		{"bad visitor id", "visitor_id=" + strings.Repeat("v", 65), chat.ListQuery{}, "invalid_visitor_id"},
	}
	for _, tc := range cases {
		p, err := DecodeParams("", nil, tc.query)
		if err != nil {
			t.Fatalf("%s: decode %q: %v", tc.name, tc.query, err)
		}
		q, err := ListQueryOf(p)
		if tc.err != "" {
			if e := chat.AsError(err); e == nil || e.Code != tc.err {
				t.Errorf("%s: err = %v, want %s", tc.name, err, tc.err)
			}
			continue
		}
		if err != nil || q != tc.want {
			t.Errorf("%s: got %+v, %v; want %+v", tc.name, q, err, tc.want)
		}
	}
}

func TestOrgSettingsOf(t *testing.T) {
	cases := []struct {
		name, body string
		after      time.Duration
		retention  int
		mode       string
		err        string
	}{
		{"absent is off", `{"name":"Shop"}`, 0, 0, "", ""},
		{"empty is off", `{"reassign_after":""}`, 0, 0, "", ""},
		{"null is off", `{"reassign_after":null}`, 0, 0, "", ""},
		{"minutes", `{"reassign_after":"15m","offline_mode":"queue","retention":30}`, 15 * time.Minute, 30, "queue", ""},
		{"compound", `{"reassign_after":"1h30m"}`, 90 * time.Minute, 0, "", ""},
		{"retention as text", `{"retention":"7"}`, 0, 7, "", ""},
		{"no unit", `{"reassign_after":"900"}`, 0, 0, "", "invalid_reassign_after"},
		{"a number", `{"reassign_after":900}`, 0, 0, "", "invalid_reassign_after"},
		{"garbage", `{"reassign_after":"soon"}`, 0, 0, "", "invalid_reassign_after"},
		{"not a scalar", `{"reassign_after":["1m"]}`, 0, 0, "", "invalid_param"},
		{"negative retention", `{"retention":-1}`, 0, 0, "", "invalid_retention"},
		{"fractional retention", `{"retention":1.5}`, 0, 0, "", "invalid_retention"},
		{"mode not a string", `{"offline_mode":{"a":1}}`, 0, 0, "", "invalid_param"},
	}
	for _, tc := range cases {
		p, err := DecodeParams("application/json", []byte(tc.body), "")
		if err != nil {
			t.Fatalf("%s: decode %s: %v", tc.name, tc.body, err)
		}
		in, err := OrgSettingsOf(p)
		if tc.err != "" {
			if e := chat.AsError(err); e == nil || e.Code != tc.err {
				t.Errorf("%s: err = %v, want %s", tc.name, err, tc.err)
			}
			continue
		}
		if err != nil || in.ReassignAfter != tc.after || in.Retention != tc.retention || in.OfflineMode != tc.mode {
			t.Errorf("%s: got %+v, %v; want reassign_after %s, retention %d, offline_mode %q", tc.name, in, err, tc.after, tc.retention, tc.mode)
		}
	}
}
