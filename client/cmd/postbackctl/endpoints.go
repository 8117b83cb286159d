package main

import (
	"context"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/emptypb"
	"google.golang.org/protobuf/types/known/fieldmaskpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/postback-dev/postback/client"
	postbackv1 "github.com/postback-dev/postback/proto/postback/v1"
)

// endpointFlags are the flags of the common Endpoint fields.
type endpointFlags struct {
	file                                       string
	account, eventType, url, method            string
	bodyFormat, bodyTemplate, bodyTemplateFile string
	successResponse, errorResponse             string
	signingSecret, signingSecretFile, minDelay string
	headers, secretHeaders                     []string
	maxRPS                                     float64
	maxInFlight                                int32
	noAdaptivePacing                           bool
	timeout, keepPrevious                      time.Duration
	enabled                                    bool
	// The command's flags, to tell which were given.
	registeredOn *pflag.FlagSet
}

func (a *app) addEndpointFlags(cmd *cobra.Command, f *endpointFlags) {
	fs := cmd.Flags()
	f.registeredOn = fs
	fs.StringVarP(&f.file, "file", "f", "", "an Endpoint as YAML or JSON (the API's field names; - for standard input); flags override its fields")
	fs.StringVar(&f.account, "account", "", "account_id: the owning account")
	fs.StringVar(&f.eventType, "event-type", "", "event_type: the event type it receives (see event-types list)")
	fs.StringVar(&f.url, "url", "", "url: absolute http(s) URL; may hold {DataPoint} macros")
	fs.StringVar(&f.method, "method", "", "method: GET or POST (unset: GET without a body template, POST with one)")
	fs.StringArrayVar(&f.headers, "header", nil, `headers: "Name: value" (repeatable; replaces the endpoint's headers)`)
	fs.StringArrayVar(&f.secretHeaders, "secret-header", nil, `headers: "Name: value" kept secret: encrypted at rest, returned masked (repeatable)`)
	fs.StringVar(&f.bodyFormat, "body-format", "", "body_format: json, form, xml or text")
	fs.StringVar(&f.bodyTemplate, "body-template", "", "body_template: the body with {DataPoint} macros (empty: the whole event as JSON)")
	fs.StringVar(&f.bodyTemplateFile, "body-template-file", "", "body_template read from a file (- for standard input)")
	fs.StringVar(&f.minDelay, "min-delay", "", "min_delay_seconds: least time between two request starts, seconds (0.5) or a duration (500ms)")
	fs.Float64Var(&f.maxRPS, "max-rps", 0, "max_requests_per_second: 0 = no limit")
	fs.Int32Var(&f.maxInFlight, "max-in-flight", 0, "max_in_flight: requests in flight at once per sender (0: the sender's default)")
	fs.BoolVar(&f.noAdaptivePacing, "no-adaptive-pacing", false, "adaptive_pacing_disabled: send at the endpoint's limits even when its server answers 429/503 (--no-adaptive-pacing=false turns pacing back on)")
	fs.StringVar(&f.successResponse, "success-response", "", `success_response: a status ("200"), a class ("2xx") or text in the body`)
	fs.StringVar(&f.errorResponse, "error-response", "", `error_response: a status ("500"), a class ("5xx") or text ("ERROR")`)
	fs.DurationVar(&f.timeout, "timeout", 0, "timeout: per-request timeout (unset: 10s; at most 60s)")
	fs.BoolVar(&f.enabled, "enabled", true, "enabled: --enabled=false disables the endpoint (and cancels its pending deliveries)")
	fs.StringVar(&f.signingSecret, "signing-secret", "", "signing_secret: Standard Webhooks secret (whsec_…); never printed back")
	fs.StringVar(&f.signingSecretFile, "signing-secret-file", "", "signing_secret read from a file (- for standard input)")
	fs.DurationVar(&f.keepPrevious, "keep-previous-secret", 0, "previous_signing_secret_expire_time, on update: with a new signing secret, the replaced one keeps signing this long too (a rotation, e.g. 72h; at most 720h); alone, moves a running rotation's end (0 ends it now)")
	_ = cmd.RegisterFlagCompletionFunc("event-type", a.completeEventTypes)
	_ = cmd.RegisterFlagCompletionFunc("method", cobra.FixedCompletions([]string{"GET", "POST"}, cobra.ShellCompDirectiveNoFileComp))
	_ = cmd.RegisterFlagCompletionFunc("body-format", cobra.FixedCompletions([]string{"json", "form", "xml", "text"}, cobra.ShellCompDirectiveNoFileComp))
	_ = cmd.MarkFlagFilename("file", "yaml", "yml", "json")
}

// parseHeader parses "Name: value".
func parseHeader(flag, s string, secret bool) (*postbackv1.Header, error) {
	name, value, ok := strings.Cut(s, ":")
	name = strings.TrimSpace(name)
	if !ok || name == "" {
		return nil, usageErrorf(`--%s %q: want "Name: value"`, flag, redactHeader(s, secret))
	}
	return &postbackv1.Header{Name: name, Value: strings.TrimSpace(value), Secret: secret}, nil
}

// redactHeader hides a secret header's text in a message.
func redactHeader(s string, secret bool) string {
	if secret {
		return "…"
	}
	return s
}

func parseMethod(s string) (postbackv1.HttpMethod, error) {
	u := strings.ToUpper(strings.TrimSpace(s))
	if v, ok := postbackv1.HttpMethod_value["HTTP_METHOD_"+strings.TrimPrefix(u, "HTTP_METHOD_")]; ok && v != 0 {
		return postbackv1.HttpMethod(v), nil
	}
	return 0, usageErrorf("--method %q: want GET or POST", s)
}

func parseBodyFormat(s string) (postbackv1.BodyFormat, error) {
	u := strings.ToUpper(strings.TrimSpace(s))
	if v, ok := postbackv1.BodyFormat_value["BODY_FORMAT_"+strings.TrimPrefix(u, "BODY_FORMAT_")]; ok && v != 0 {
		return postbackv1.BodyFormat(v), nil
	}
	return 0, usageErrorf("--body-format %q: want json, form, xml or text", s)
}

// parseSeconds parses seconds ("0.5") or a duration ("500ms").
func parseSeconds(flag, s string) (float64, error) {
	if f, err := strconv.ParseFloat(strings.TrimSpace(s), 64); err == nil && f >= 0 {
		return f, nil
	}
	if d, err := time.ParseDuration(strings.TrimSpace(s)); err == nil && d >= 0 {
		return d.Seconds(), nil
	}
	return 0, usageErrorf("--%s %q: want seconds (0.5) or a duration (500ms)", flag, s)
}

// apply sets the fields of the flags given on e and returns their field
// names (for an update mask).
func (a *app) applyEndpointFlags(f *endpointFlags, e *postbackv1.Endpoint) ([]string, error) {
	fs := f.registeredOn
	var mask []string
	set := func(flag, path string) bool {
		if fs.Changed(flag) {
			mask = append(mask, path)
			return true
		}
		return false
	}
	if set("account", "account_id") {
		e.AccountId = f.account
	}
	if set("event-type", "event_type") {
		e.EventType = f.eventType
	}
	if set("url", "url") {
		e.Url = f.url
	}
	if set("method", "method") {
		m, err := parseMethod(f.method)
		if err != nil {
			return nil, err
		}
		e.Method = m
	}
	if fs.Changed("header") || fs.Changed("secret-header") {
		mask = append(mask, "headers")
		e.Headers = nil
		for _, s := range f.headers {
			h, err := parseHeader("header", s, false)
			if err != nil {
				return nil, err
			}
			e.Headers = append(e.Headers, h)
		}
		for _, s := range f.secretHeaders {
			h, err := parseHeader("secret-header", s, true)
			if err != nil {
				return nil, err
			}
			e.Headers = append(e.Headers, h)
		}
	}
	if set("body-format", "body_format") {
		bf, err := parseBodyFormat(f.bodyFormat)
		if err != nil {
			return nil, err
		}
		e.BodyFormat = bf
	}
	if fs.Changed("body-template") && fs.Changed("body-template-file") {
		return nil, usageErrorf("--body-template and --body-template-file: give one")
	}
	if set("body-template", "body_template") {
		e.BodyTemplate = f.bodyTemplate
	}
	if set("body-template-file", "body_template") {
		b, err := a.readSource("--body-template-file", f.bodyTemplateFile)
		if err != nil {
			return nil, err
		}
		e.BodyTemplate = string(b)
	}
	if set("min-delay", "min_delay_seconds") {
		v, err := parseSeconds("min-delay", f.minDelay)
		if err != nil {
			return nil, err
		}
		e.MinDelaySeconds = v
	}
	if set("max-rps", "max_requests_per_second") {
		e.MaxRequestsPerSecond = f.maxRPS
	}
	if set("max-in-flight", "max_in_flight") {
		e.MaxInFlight = f.maxInFlight
	}
	if set("no-adaptive-pacing", "adaptive_pacing_disabled") {
		e.AdaptivePacingDisabled = f.noAdaptivePacing
	}
	if set("success-response", "success_response") {
		e.SuccessResponse = f.successResponse
	}
	if set("error-response", "error_response") {
		e.ErrorResponse = f.errorResponse
	}
	if set("timeout", "timeout") {
		e.Timeout = durationpb.New(f.timeout)
	}
	if set("enabled", "enabled") {
		e.Enabled = proto.Bool(f.enabled)
	}
	if fs.Changed("signing-secret") && fs.Changed("signing-secret-file") {
		return nil, usageErrorf("--signing-secret and --signing-secret-file: give one")
	}
	if set("signing-secret", "signing_secret") {
		e.SigningSecret = f.signingSecret
	}
	if set("signing-secret-file", "signing_secret") {
		b, err := a.readSource("--signing-secret-file", f.signingSecretFile)
		if err != nil {
			return nil, err
		}
		e.SigningSecret = strings.TrimSpace(string(b))
	}
	if set("keep-previous-secret", "previous_signing_secret_expire_time") {
		if f.keepPrevious < 0 {
			return nil, usageErrorf("--keep-previous-secret %s: want 0 or more", f.keepPrevious)
		}
		e.PreviousSigningSecretExpireTime = nil
		if f.keepPrevious > 0 {
			e.PreviousSigningSecretExpireTime = timestamppb.New(time.Now().Add(f.keepPrevious))
		}
	}
	return mask, nil
}

// endpointFromInput reads -f (when given) over base and then the flags;
// it returns the endpoint and the fields set (file's and flags').
func (a *app) endpointFromInput(f *endpointFlags, base *postbackv1.Endpoint) (*postbackv1.Endpoint, []string, error) {
	e := base
	if e == nil {
		e = &postbackv1.Endpoint{}
	}
	var names []string
	if f.file != "" {
		b, err := a.readSource("--file", f.file)
		if err != nil {
			return nil, nil, err
		}
		doc := &postbackv1.Endpoint{}
		names, err = unmarshalDoc(sourceName(f.file), b, doc)
		if err != nil {
			return nil, nil, err
		}
		overlay(e, doc, names)
	}
	flagNames, err := a.applyEndpointFlags(f, e)
	if err != nil {
		return nil, nil, err
	}
	return e, append(names, flagNames...), nil
}

// overlay copies the named fields of src onto dst.
func overlay(dst, src proto.Message, names []string) {
	d, s := dst.ProtoReflect(), src.ProtoReflect()
	fields := s.Descriptor().Fields()
	for _, n := range names {
		fd := fields.ByName(protoreflect.Name(n))
		if fd == nil {
			continue
		}
		if s.Has(fd) {
			d.Set(fd, s.Get(fd))
		} else {
			d.Clear(fd)
		}
	}
}

func (a *app) endpointsCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:     "endpoints",
		Aliases: []string{"endpoint", "ep"},
		Short:   "Manage endpoints: where and how postbacks are sent",
	}
	cmd.AddCommand(a.endpointsCreate(), a.endpointsGet(), a.endpointsList(), a.endpointsUpdate(),
		a.endpointsDelete(), a.endpointsPreview(), a.endpointsTest())
	return group(cmd)
}

func (a *app) endpointsCreate() *cobra.Command {
	f := &endpointFlags{}
	cmd := &cobra.Command{
		Use:   "create [-f endpoint.yaml] [flags]",
		Short: "Create an endpoint from flags and/or a YAML or JSON file",
		Example: `  postbackctl endpoints create --account brand-1 --event-type action_clearing \
      --url 'https://brand.example/pb?campaign={CampaignId}' --method GET
  postbackctl endpoints create -f endpoint.yaml --enabled=false`,
		Args: noArgs,
		RunE: a.runE(func(cmd *cobra.Command, _ []string) error {
			e, _, err := a.endpointFromInput(f, nil)
			if err != nil {
				return err
			}
			for _, req := range []struct{ flag, field, val string }{
				{"--account", "account_id", e.AccountId}, {"--event-type", "event_type", e.EventType}, {"--url", "url", e.Url}} {
				if strings.TrimSpace(req.val) == "" {
					return usageErrorf("%s is required (or %s in -f)", req.flag, req.field)
				}
			}
			e.Id, e.CreateTime, e.UpdateTime = "", nil, nil
			out, err := unary(a, func(ctx context.Context, c *client.Client) (*postbackv1.Endpoint, error) {
				return c.Endpoints().CreateEndpoint(ctx, &postbackv1.CreateEndpointRequest{Endpoint: e})
			})
			if err != nil {
				return err
			}
			return a.emitEndpoint(out)
		}),
	}
	a.addEndpointFlags(cmd, f)
	return cmd
}

func (a *app) endpointsGet() *cobra.Command {
	return &cobra.Command{
		Use:   "get ID",
		Short: "Show an endpoint (secrets masked)",
		Args:  exactArgs(1, "an endpoint ID"),
		RunE: a.runE(func(cmd *cobra.Command, args []string) error {
			e, err := a.getEndpoint(args[0])
			if err != nil {
				return err
			}
			return a.emitEndpoint(e)
		}),
	}
}

func (a *app) getEndpoint(id string) (*postbackv1.Endpoint, error) {
	return unary(a, func(ctx context.Context, c *client.Client) (*postbackv1.Endpoint, error) {
		return c.Endpoints().GetEndpoint(ctx, &postbackv1.GetEndpointRequest{Id: id})
	})
}

func (a *app) endpointsList() *cobra.Command {
	var account, eventType, pageToken string
	var pageSize int32
	var all bool
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List endpoints, ordered by id",
		Args:  noArgs,
		RunE: a.runE(func(cmd *cobra.Command, _ []string) error {
			if pageSize < 0 {
				return usageErrorf("--page-size: want 0 (the server's default) to 500, got %d", pageSize)
			}
			req := &postbackv1.ListEndpointsRequest{AccountId: account, EventType: eventType, PageSize: pageSize}
			out := &postbackv1.ListEndpointsResponse{}
			if err := a.pages(all, pageToken, func(ctx context.Context, c *client.Client, token string) (string, error) {
				req.PageToken = token
				res, err := c.Endpoints().ListEndpoints(ctx, req)
				if err != nil {
					return "", err
				}
				out.Endpoints = append(out.Endpoints, res.Endpoints...)
				out.NextPageToken = res.NextPageToken
				return res.NextPageToken, nil
			}); err != nil {
				return err
			}
			return a.emit(out, func(w io.Writer) {
				row(w, "ID", "ACCOUNT", "EVENT TYPE", "METHOD", "ENABLED", "URL")
				for _, e := range out.Endpoints {
					row(w, e.Id, e.AccountId, e.EventType, methodName(e), enabledText(e), e.Url)
				}
				a.morePages(out.NextPageToken)
			})
		}),
	}
	fs := cmd.Flags()
	fs.StringVar(&account, "account", "", "only this account's endpoints (required for an account token)")
	fs.StringVar(&eventType, "event-type", "", "only this event type's")
	fs.Int32Var(&pageSize, "page-size", 0, "endpoints a page (0: the server's default, 50; at most 500)")
	fs.StringVar(&pageToken, "page-token", "", "the next_page_token of a previous page")
	fs.BoolVar(&all, "all", false, "follow next_page_token to the last page")
	_ = cmd.RegisterFlagCompletionFunc("event-type", a.completeEventTypes)
	return cmd
}

// morePages tells, on stderr, how to get the next page of a table.
func (a *app) morePages(token string) {
	if token != "" {
		fmt.Fprintf(a.stderr, "more: --page-token %s (or --all)\n", token)
	}
}

func (a *app) endpointsUpdate() *cobra.Command {
	f := &endpointFlags{}
	cmd := &cobra.Command{
		Use:   "update [ID] [-f endpoint.yaml] [flags]",
		Short: "Change the endpoint fields given as flags or in the file",
		Long: `Change an endpoint. Only the fields given change: each flag given, and each
top-level field of the -f document (the update mask). A document saved with
"endpoints get ID -o yaml" can be edited and applied as it is: its masked
secrets keep the stored ones. --header/--secret-header replace all headers.`,
		Args: maxArgs(1, "an endpoint ID"),
		RunE: a.runE(func(cmd *cobra.Command, args []string) error {
			e, names, err := a.endpointFromInput(f, nil)
			if err != nil {
				return err
			}
			if len(args) == 1 {
				if e.Id != "" && e.Id != args[0] {
					return usageErrorf("ID %s differs from the file's id %s", args[0], e.Id)
				}
				e.Id = args[0]
			}
			if e.Id == "" {
				return usageErrorf("update wants an endpoint ID (an argument, or id in -f)")
			}
			var mask []string
			for _, n := range names {
				switch n {
				case "id", "account_id", "create_time", "update_time", "previous_signing_secret", "health", "enabled_changes":
					continue // not changeable; the server checks account_id
				}
				if !slices.Contains(mask, n) {
					mask = append(mask, n)
				}
			}
			if len(mask) == 0 {
				return usageErrorf("nothing to update: give the fields to change as flags (--url, --enabled=false, …) or in -f")
			}
			out, err := unary(a, func(ctx context.Context, c *client.Client) (*postbackv1.Endpoint, error) {
				return c.Endpoints().UpdateEndpoint(ctx, &postbackv1.UpdateEndpointRequest{
					Endpoint: e, UpdateMask: &fieldmaskpb.FieldMask{Paths: mask}})
			})
			if err != nil {
				return err
			}
			return a.emitEndpoint(out)
		}),
	}
	a.addEndpointFlags(cmd, f)
	return cmd
}

func (a *app) endpointsDelete() *cobra.Command {
	return &cobra.Command{
		Use:   "delete ID",
		Short: "Delete an endpoint (its pending deliveries are cancelled)",
		Args:  exactArgs(1, "an endpoint ID"),
		RunE: a.runE(func(cmd *cobra.Command, args []string) error {
			out, err := unary(a, func(ctx context.Context, c *client.Client) (*emptypb.Empty, error) {
				return c.Endpoints().DeleteEndpoint(ctx, &postbackv1.DeleteEndpointRequest{Id: args[0]})
			})
			if err != nil {
				return err
			}
			if out == nil {
				out = &emptypb.Empty{}
			}
			return a.emit(out, func(w io.Writer) { fmt.Fprintf(w, "deleted %s\n", args[0]) })
		}),
	}
}

func (a *app) endpointsPreview() *cobra.Command {
	f := &endpointFlags{}
	var data string
	cmd := &cobra.Command{
		Use:   "preview [ID] [-f endpoint.yaml] [flags] [--data JSON]",
		Short: "Render the request an endpoint would send; sends nothing",
		Long: `Render method, URL, headers and body for the given data (or the event
type's sample). The endpoint is the stored one named by ID, if given, with
the -f document's fields and the flags applied over it; or, without ID, the
one the file and the flags describe.`,
		Args: maxArgs(1, "an endpoint ID"),
		RunE: a.runE(func(cmd *cobra.Command, args []string) error {
			var base *postbackv1.Endpoint
			if len(args) == 1 {
				var err error
				if base, err = a.getEndpoint(args[0]); err != nil {
					return err
				}
			}
			e, _, err := a.endpointFromInput(f, base)
			if err != nil {
				return err
			}
			if base == nil {
				for _, req := range []struct{ flag, field, val string }{{"--event-type", "event_type", e.EventType}, {"--url", "url", e.Url}} {
					if strings.TrimSpace(req.val) == "" {
						return usageErrorf("%s is required (or %s in -f, or an endpoint ID)", req.flag, req.field)
					}
				}
			}
			req := &postbackv1.PreviewEndpointRequest{Endpoint: e}
			if cmd.Flags().Changed("data") {
				if req.Data, err = a.parseData("--data", data); err != nil {
					return err
				}
			}
			out, err := unary(a, func(ctx context.Context, c *client.Client) (*postbackv1.PreviewEndpointResponse, error) {
				return c.Endpoints().PreviewEndpoint(ctx, req)
			})
			if err != nil {
				return err
			}
			return a.emit(out, func(w io.Writer) {
				field(w, "Method", out.Method)
				field(w, "URL", out.Url)
				for _, h := range out.Headers {
					field(w, "Header", h.Name+": "+h.Value)
				}
				if out.Body != "" {
					fmt.Fprintln(w, "Body:")
					if fl, ok := w.(interface{ Flush() error }); ok {
						_ = fl.Flush()
					}
					fmt.Fprintln(a.stdout, out.Body)
				}
			})
		}),
	}
	a.addEndpointFlags(cmd, f)
	cmd.Flags().StringVar(&data, "data", "", "event data as a JSON object, @file or - (standard input); default: the event type's sample")
	return cmd
}

func (a *app) endpointsTest() *cobra.Command {
	return &cobra.Command{
		Use:   "test ID",
		Short: "Send the event type's sample to an endpoint once, now",
		Long: `Render the event type's sample and send it to the endpoint once; print the
attempt. Exits 1 when the attempt failed (outcome FAILURE).`,
		Args: exactArgs(1, "an endpoint ID"),
		RunE: a.runE(func(cmd *cobra.Command, args []string) error {
			at, err := unary(a, func(ctx context.Context, c *client.Client) (*postbackv1.Attempt, error) {
				return c.Endpoints().TestEndpoint(ctx, &postbackv1.TestEndpointRequest{Id: args[0]})
			})
			if err != nil {
				return err
			}
			if err := a.emitAttempt(at); err != nil {
				return err
			}
			if at.Outcome != postbackv1.AttemptOutcome_ATTEMPT_OUTCOME_SUCCESS {
				return failedf("test of %s failed: %s", args[0], attemptSummary(at))
			}
			return nil
		}),
	}
}

// attemptSummary says in a few words how an attempt went.
func attemptSummary(at *postbackv1.Attempt) string {
	var parts []string
	if at.StatusCode != 0 {
		parts = append(parts, fmt.Sprintf("HTTP %d", at.StatusCode))
	}
	if at.Error != "" {
		parts = append(parts, at.Error)
	}
	if len(parts) == 0 {
		parts = append(parts, enumName(at.Outcome, "ATTEMPT_OUTCOME_"))
	}
	return strings.Join(parts, ": ")
}

func methodName(e *postbackv1.Endpoint) string {
	if e.Method == postbackv1.HttpMethod_HTTP_METHOD_UNSPECIFIED {
		if e.BodyTemplate == "" {
			return "GET"
		}
		return "POST"
	}
	return enumName(e.Method, "HTTP_METHOD_")
}

func enabledText(e *postbackv1.Endpoint) string {
	if e.Enabled == nil {
		return "true"
	}
	return strconv.FormatBool(*e.Enabled)
}

// emitEndpoint prints one endpoint; secrets as the server masked them.
func (a *app) emitEndpoint(e *postbackv1.Endpoint) error {
	return a.emit(e, func(w io.Writer) {
		field(w, "ID", e.Id)
		field(w, "Account", e.AccountId)
		field(w, "Event type", e.EventType)
		field(w, "URL", e.Url)
		field(w, "Method", methodName(e))
		for _, h := range e.Headers {
			v := h.Name + ": " + h.Value
			if h.Secret {
				v += " (secret)"
			}
			field(w, "Header", v)
		}
		bf := "JSON"
		if e.BodyFormat != postbackv1.BodyFormat_BODY_FORMAT_UNSPECIFIED {
			bf = enumName(e.BodyFormat, "BODY_FORMAT_")
		}
		field(w, "Body format", bf)
		field(w, "Body template", e.BodyTemplate)
		field(w, "Min delay", fmt.Sprintf("%gs", e.MinDelaySeconds))
		field(w, "Max requests/s", e.MaxRequestsPerSecond)
		field(w, "Max in flight", e.MaxInFlight)
		field(w, "Adaptive pacing", map[bool]string{false: "on", true: "off"}[e.AdaptivePacingDisabled])
		field(w, "Success response", e.SuccessResponse)
		field(w, "Error response", e.ErrorResponse)
		field(w, "Timeout", dur(e.Timeout))
		field(w, "Enabled", enabledText(e))
		field(w, "Signing secret", e.SigningSecret)
		if e.PreviousSigningSecret != "" {
			field(w, "Previous signing secret", e.PreviousSigningSecret+" (until "+ts(e.PreviousSigningSecretExpireTime)+")")
		}
		field(w, "Created", ts(e.CreateTime))
		field(w, "Updated", ts(e.UpdateTime))
	})
}

// emitAttempt prints one attempt.
func (a *app) emitAttempt(at *postbackv1.Attempt) error {
	return a.emit(at, func(w io.Writer) {
		field(w, "Delivery", at.DeliveryId)
		field(w, "Number", at.Number)
		field(w, "Start", ts(at.StartTime))
		field(w, "Duration", dur(at.Duration))
		field(w, "URL", at.Url)
		field(w, "Status code", at.StatusCode)
		field(w, "Outcome", enumName(at.Outcome, "ATTEMPT_OUTCOME_"))
		field(w, "Retryable", at.Retryable)
		field(w, "Error", at.Error)
		field(w, "Response body", truncate(at.ResponseBody, 200))
	})
}
