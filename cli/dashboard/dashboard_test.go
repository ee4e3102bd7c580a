package dashboard

import "testing"

// The token is $KPLEX_DASHBOARD_TOKEN, else a new random one each start.
func TestTokenFromEnv(t *testing.T) {
	t.Setenv(TokenEnv, "")
	a, errA := tokenFromEnv()
	b, errB := tokenFromEnv()
	if errA != nil || errB != nil || a == b || validToken(a) != nil {
		t.Errorf("random tokens %q, %q (%v, %v): want two different valid ones", a, b, errA, errB)
	}
	t.Setenv(TokenEnv, testToken)
	if got, err := tokenFromEnv(); got != testToken || err != nil {
		t.Errorf("with $%s set: %q, %v", TokenEnv, got, err)
	}
}
