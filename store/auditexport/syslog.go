package auditexport

import (
	"strconv"
	"strings"
	"time"
)

// enterpriseID names hardbound's SD-ID (RFC 5424 §6.3.2: name@<private
// enterprise number>). 32473 is the number RFC 5612 reserves for
// documentation; a site that registered its own may map it in its
// receiver.
const sdID = "hardbound@32473"

// syslogFormat renders items as RFC 5424 messages.
type syslogFormat struct {
	facility int
	host     string // HOSTNAME, already checked printable
	procID   string
}

func newSyslogFormat(facility int, host string, pid int) syslogFormat {
	return syslogFormat{facility: facility, host: printUSASCII(host, 255), procID: strconv.Itoa(pid)}
}

// appendMessage appends one RFC 5424 SYSLOG-MSG:
//
//	<PRI>1 TIMESTAMP HOSTNAME hardbound PROCID MSGID [hardbound@32473 seq=".." hash=".."] JSON
//
// MSGID is "audit" or "checkpoint"; the structured data repeats seq and
// hash so that a receiver can index them without parsing MSG, which is
// the item's JSON object (record.go).
func (f syslogFormat) appendMessage(b []byte, it item) ([]byte, error) {
	sev, msgid, at, hash := 6, "audit", time.Time{}, ""
	if it.ev != nil {
		at, hash = it.ev.Time, it.ev.Hash.String()
		if it.ev.Result != "ok" {
			sev = 5 // notice: a reject, a denial or an error
		}
	} else {
		msgid, at, hash = "checkpoint", it.cp.Time, it.cp.Hash.String()
	}
	b = append(b, '<')
	b = strconv.AppendInt(b, int64(f.facility*8+sev), 10)
	b = append(b, ">1 "...)
	if at.IsZero() {
		b = append(b, '-')
	} else {
		b = at.UTC().AppendFormat(b, "2006-01-02T15:04:05.000000Z07:00")
	}
	b = append(b, ' ')
	b = append(b, f.host...)
	b = append(b, " hardbound "...)
	b = append(b, f.procID...)
	b = append(b, ' ')
	b = append(b, msgid...)
	b = append(b, " ["+sdID+" seq=\""...)
	b = strconv.AppendUint(b, it.seq(), 10)
	b = append(b, "\" hash=\""...)
	b = append(b, hash...) // hex: nothing to escape
	b = append(b, "\"] "...)
	return it.appendJSON(b, f.host)
}

// printUSASCII makes s a valid RFC 5424 header field: PRINTUSASCII
// (33-126), at most n characters, "-" when empty.
func printUSASCII(s string, n int) string {
	s = strings.Map(func(r rune) rune {
		if r < 33 || r > 126 {
			return '_'
		}
		return r
	}, s)
	if len(s) > n {
		s = s[:n]
	}
	if s == "" {
		return "-"
	}
	return s
}
