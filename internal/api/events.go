package api

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"

	"github.com/wisp-dev/wisp/apitype"
	"github.com/wisp-dev/wisp/internal/auth"
	"github.com/wisp-dev/wisp/internal/connlimit"
	"github.com/wisp-dev/wisp/internal/events"
	"github.com/wisp-dev/wisp/internal/events/cloudevent"
)

// Events serves /v1/events, /v1/subscriptions and /v1/schedules.
type Events interface {
	Publish(ctx context.Context, topic string, ev cloudevent.Event, principal string) error
	Read(ctx context.Context, topic string, after uint64, limit int) ([]events.TopicEvent, error)
	Catalog(ctx context.Context) ([]events.Topic, error)
	Subscribe(ctx context.Context, s events.Subscription) (events.Subscription, error)
	Unsubscribe(ctx context.Context, id string) error
	Subscriptions(topic, function string) []events.Subscription
	Schedules(ctx context.Context, function string) ([]events.ScheduleInfo, error)
}

func (a *api) eventsOn() (Events, error) {
	if a.events == nil {
		return nil, &Error{http.StatusNotImplemented, apitype.TypeService, "events are not enabled on this node"}
	}
	return a.events, nil
}

// publisher authenticates a publish: the admin token, or a function's own
// token (functions publish through WISP_API_URL). It returns who it is, as
// auth names principals; what that principal may publish, events decides.
func (a *api) publisher(r *http.Request) (string, error) {
	tok, ok := auth.BearerToken(r.Header)
	if a.fnTokens != nil {
		if fn, isFn := a.fnTokens.Function(tok); ok && isFn {
			connlimit.MarkAuthenticated(r.Context())
			return auth.FunctionPrincipal(fn), nil
		}
	}
	if ok && auth.IsToken(tok, a.token) {
		connlimit.MarkAuthenticated(r.Context())
		return auth.PrincipalAdmin, nil
	}
	return "", apiError(apitype.TypeUnauthorized, "missing or wrong bearer token")
}

// publishEvent accepts a CloudEvent in structured or binary mode, or any
// JSON, which it wraps into one; 202 once it is stored. Subscribing and
// reading topics stay the admin's: a function's token only publishes, to
// the topics its grants match.
func (a *api) publishEvent(w http.ResponseWriter, r *http.Request) error {
	principal, err := a.publisher(r)
	if err != nil {
		w.Header().Set("WWW-Authenticate", `Bearer realm="wisp"`)
		return err
	}
	ev, err := a.eventsOn()
	if err != nil {
		return err
	}
	topic := r.PathValue("topic")
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, events.MaxPayload))
	if err != nil {
		var maxErr *http.MaxBytesError
		if errors.As(err, &maxErr) {
			return apiError(apitype.TypeRequestTooLarge,
				fmt.Sprintf("an event must be at most %d bytes", events.MaxPayload))
		}
		return badRequest("reading the body: " + err.Error())
	}
	source := "wisp://api"
	if fn, ok := auth.PrincipalFunction(principal); ok {
		source = "wisp://functions/" + fn
	}
	e, err := cloudevent.FromHTTP(r.Header, body, cloudevent.Wrap{Source: source, Type: "wisp.event", Now: a.now().UTC()})
	switch {
	case errors.Is(err, cloudevent.ErrUnsupported):
		return apiError(apitype.TypeUnsupportedMediaType, err.Error())
	case err != nil:
		return apiError(apitype.TypeInvalidRequestContent, err.Error())
	}
	if err := ev.Publish(r.Context(), topic, e, principal); err != nil {
		return err
	}
	writeJSON(w, http.StatusAccepted, apitype.PublishResult{ID: e.ID, Source: e.Source, Topic: topic})
	return nil
}

func (a *api) readEvents(w http.ResponseWriter, r *http.Request) error {
	ev, err := a.eventsOn()
	if err != nil {
		return err
	}
	q := r.URL.Query()
	limit := defaultPage
	if s := q.Get("limit"); s != "" {
		if limit, err = strconv.Atoi(s); err != nil || limit < 1 || limit > maxPage {
			return badRequest(fmt.Sprintf("limit %q must be 1 to %d", s, maxPage))
		}
	}
	var after uint64
	if s := q.Get("after"); s != "" {
		if after, err = strconv.ParseUint(s, 10, 64); err != nil {
			return badRequest(fmt.Sprintf("after %q must be a sequence number", s))
		}
	}
	list, err := ev.Read(r.Context(), r.PathValue("topic"), after, limit)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]any{"events": list})
	return nil
}

func (a *api) eventCatalog(w http.ResponseWriter, r *http.Request) error {
	ev, err := a.eventsOn()
	if err != nil {
		return err
	}
	topics, err := ev.Catalog(r.Context())
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]any{"topics": topics})
	return nil
}

func (a *api) subscribe(w http.ResponseWriter, r *http.Request) error {
	ev, err := a.eventsOn()
	if err != nil {
		return err
	}
	var body apitype.Subscription
	if err := decodeJSON(r.Body, &body, false); err != nil {
		return err
	}
	if body.ID != "" || !body.CreatedAt.IsZero() {
		return badRequest("id and created_at are set by the node")
	}
	s, err := ev.Subscribe(r.Context(), events.Subscription{Topic: body.Topic, Function: body.Function,
		Qualifier: body.Qualifier, Filter: cloudevent.Filter(body.Filter)})
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusCreated, wireSubscription(s))
	return nil
}

func (a *api) listSubscriptions(w http.ResponseWriter, r *http.Request) error {
	ev, err := a.eventsOn()
	if err != nil {
		return err
	}
	q := r.URL.Query()
	writeJSON(w, http.StatusOK, map[string]any{"subscriptions": each(ev.Subscriptions(q.Get("topic"), q.Get("function")), wireSubscription)})
	return nil
}

func (a *api) unsubscribe(w http.ResponseWriter, r *http.Request) error {
	ev, err := a.eventsOn()
	if err != nil {
		return err
	}
	if err := ev.Unsubscribe(r.Context(), r.PathValue("id")); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (a *api) listSchedules(w http.ResponseWriter, r *http.Request) error {
	ev, err := a.eventsOn()
	if err != nil {
		return err
	}
	list, err := ev.Schedules(r.Context(), r.URL.Query().Get("function"))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]any{"schedules": each(list, wireScheduleInfo)})
	return nil
}
