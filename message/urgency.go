package message

import (
	"fmt"
	"slices"
)

// Urgency orders work. The zero value is not a valid urgency.
type Urgency string

// Urgency levels, lowest first.
const (
	Low    Urgency = "low"
	Normal Urgency = "normal"
	High   Urgency = "high"
	Urgent Urgency = "urgent"
)

// Urgencies lists the levels, lowest first.
var Urgencies = []Urgency{Low, Normal, High, Urgent}

// Rank is the level's position, 0 for low; -1 for an unknown value.
func (u Urgency) Rank() int { return slices.Index(Urgencies, u) }

// Valid reports whether u is a known level.
func (u Urgency) Valid() bool { return u.Rank() >= 0 }

// Raise returns the level n steps higher, never above Urgent.
func (u Urgency) Raise(n int) Urgency {
	r := min(max(u.Rank()+n, 0), len(Urgencies)-1)
	return Urgencies[r]
}

// Max returns the higher of u and o.
func (u Urgency) Max(o Urgency) Urgency {
	if o.Rank() > u.Rank() {
		return o
	}
	return u
}

// ParseUrgency reads a level by name.
func ParseUrgency(s string) (Urgency, error) {
	u := Urgency(s)
	if !u.Valid() {
		return "", fmt.Errorf("unknown urgency %q (want low, normal, high or urgent)", s)
	}
	return u, nil
}
