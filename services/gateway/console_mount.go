package gateway

import (
	"fmt"
	"log/slog"
	"net/http"

	"github.com/postback-dev/postback/pkg/auth"
	"github.com/postback-dev/postback/services/gateway/console"
)

// mountConsole serves the brand console (services/gateway/console) on mux
// under console.Prefix, calling srv in process through the same
// authentication, tenancy and request checks as the gRPC listener.
func mountConsole(mux *http.ServeMux, srv *Server, a *auth.Authenticator, log *slog.Logger) error {
	c, err := console.New(console.Options{Conn: srv.InProcess(a), Auth: a, Logger: log.With("component", "console")})
	if err != nil {
		return fmt.Errorf("gateway: %w", err)
	}
	mux.Handle(console.Prefix, c)
	log.Info("brand console mounted", "path", console.Prefix)
	return nil
}
