package main

import (
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"

	"provision/plan"
	"provision/providers/rest"
)

// endpointRates picks the clients worth showing: every plan endpoint that sent a
// request, and any other client (a per-item server) that was throttled.
func endpointRates(m *rest.Meters, p *plan.Plan) []rest.RateStats {
	var out []rest.RateStats
	for _, s := range m.Stats() {
		_, isEndpoint := p.Endpoints[s.Endpoint]
		if (isEndpoint && s.Requests > 0) || s.Throttled > 0 {
			out = append(out, s)
		}
	}
	sort.SliceStable(out, func(i, j int) bool {
		_, ei := p.Endpoints[out[i].Endpoint]
		_, ej := p.Endpoints[out[j].Endpoint]
		return ei && !ej
	})
	return out
}

// rateSuffix is the per-endpoint part of the progress line: the rate in force and
// the throttled answers, for endpoints that are limited.
func rateSuffix(stats []rest.RateStats) string {
	var parts []string
	for i, s := range stats {
		if i == 4 {
			parts = append(parts, fmt.Sprintf("+%d more", len(stats)-i))
			break
		}
		r := "unlimited"
		if s.Limited {
			r = fmt.Sprintf("%.1f/s", s.Rate)
		}
		parts = append(parts, fmt.Sprintf("%s %s throttled=%d", s.Endpoint, r, s.Throttled))
	}
	if len(parts) == 0 {
		return ""
	}
	return " | " + strings.Join(parts, ", ")
}

// writeRates is the endpoints part of the final report. A rate counts as found only
// after a second decrease: the first is Beta times what the client happened to be
// sending when the first refusal came (a per-item server sending one request at a
// time, a burst at the start), so one refusal says nothing about the limit and is
// not offered for the plan.
func writeRates(w io.Writer, stats []rest.RateStats) {
	if len(stats) == 0 {
		return
	}
	// Each line fits 80 columns for endpoint names of up to 12 characters.
	fmt.Fprintln(w, "endpoints (a rate found by throttling can go in limits.rate_per_second):")
	width := 0
	for _, s := range stats {
		width = max(width, len(s.Endpoint))
	}
	for i, s := range stats {
		if i == 20 {
			fmt.Fprintf(w, "  ... and %d more\n", len(stats)-20)
			break
		}
		var how string
		switch {
		case s.Limited && s.Cuts == 1:
			how = "one throttling episode: no limit found"
		case s.Limited && s.Cuts > 1:
			how = fmt.Sprintf("%.1f/s found", s.Rate)
		case s.Limited:
			how = fmt.Sprintf("%.1f/s, the plan's rate_per_second", s.Rate)
		default:
			how = "no limit met"
		}
		if s.Ceiling > 0 && s.Cuts > 1 {
			how += " (ceiling " + strconv.FormatFloat(s.Ceiling, 'f', -1, 64) + ")"
		}
		fmt.Fprintf(w, "  %-*s  %s; %d/%d throttled\n", width, s.Endpoint, how, s.Throttled, s.Requests)
	}
}
