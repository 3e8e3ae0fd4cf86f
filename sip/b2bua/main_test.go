package b2bua_test

import (
	"os"
	"testing"

	"github.com/emiago/sipgo/sip"
)

func TestMain(m *testing.M) {
	if os.Getenv("SIP_DEBUG") != "" {
		sip.SIPDebug = true
	}
	os.Exit(m.Run())
}
