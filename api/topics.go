// Package api is the wire contract between the controller and the village
// boxes: MQTT topic names, the messages on them, how commands are signed and
// verified, and the HTTP types both sides exchange. The HTTP API itself is
// described in openapi.yaml beside this file; the MQTT design in README.md.
//
// It imports only the standard library and the pure domain package.
package api

import (
	"fmt"
	"strings"

	"github.com/cunxiang/cunxiang/playlists"
)

// DefaultPrefix is the root of every Cunxiang topic.
const DefaultPrefix = "cx/v1"

// Topics names MQTT topics under one prefix, so several installations (or
// test runs) can share a broker without seeing each other.
type Topics struct {
	Prefix string
}

func (t Topics) p() string {
	if t.Prefix == "" {
		return DefaultPrefix
	}
	return t.Prefix
}

// Group names a set of boxes that one retained command reaches: the whole
// county ("all"), one township ("t/<9 digits>") or one village
// ("v/<12 digits>").
type Group string

// GroupAll reaches every box of the installation.
const GroupAll Group = "all"

// TownshipGroup is the group of every box whose village code starts with
// the township's 9-digit code.
func TownshipGroup(township9 string) Group { return Group("t/" + township9) }

// VillageGroup is the group of exactly one box.
func VillageGroup(village12 string) Group { return Group("v/" + village12) }

// GroupsOf lists the groups a village's box belongs to, widest first.
func GroupsOf(village string) []Group {
	return []Group{GroupAll, TownshipGroup(TownshipCode(village)), VillageGroup(village)}
}

// TownshipCode is the 9-digit township part of a 12-digit village code.
func TownshipCode(village string) string {
	if len(village) < 9 {
		return village
	}
	return village[:9]
}

// Command topics carry retained, signed desired state from the controller.
//
//	<prefix>/cmd/<group>/sched/<schedule id>   one schedule (or its withdrawal)
//	<prefix>/cmd/v/<village>/ack               reports the controller has stored
func (t Topics) Schedule(g Group, scheduleID int64) string {
	return fmt.Sprintf("%s/cmd/%s/sched/%d", t.p(), g, scheduleID)
}

// Broadcast is the retained topic of one broadcast (or its cancellation)
// for a group.
func (t Topics) Broadcast(g Group, broadcastID int64) string {
	return fmt.Sprintf("%s/cmd/%s/bcast/%d", t.p(), g, broadcastID)
}

// Config is the retained settings topic of a township or village group.
func (t Topics) Config(g Group) string { return fmt.Sprintf("%s/cmd/%s/config", t.p(), g) }

// ReportsAck is the retained per-box topic on which the controller says up
// to which sequence number it has committed the box's reports.
func (t Topics) ReportsAck(village string) string {
	return fmt.Sprintf("%s/cmd/v/%s/ack", t.p(), village)
}

// CommandFilter is the subscription that receives every command of a group.
func (t Topics) CommandFilter(g Group) string { return fmt.Sprintf("%s/cmd/%s/#", t.p(), g) }

// Events is where a box publishes its reports (QoS 1, not retained).
func (t Topics) Events(village string) string { return fmt.Sprintf("%s/evt/%s", t.p(), village) }

// EventsFilter receives every box's reports.
func (t Topics) EventsFilter() string { return t.p() + "/evt/+" }

// Presence is the retained online/offline topic of a box; its Last Will
// publishes "offline" there.
func (t Topics) Presence(village string) string {
	return fmt.Sprintf("%s/presence/%s", t.p(), village)
}

// PresenceFilter receives every box's presence.
func (t Topics) PresenceFilter() string { return t.p() + "/presence/+" }

// GroupOfCommandTopic returns the group a command topic was published to,
// or false when the topic is not a command topic of this prefix.
func (t Topics) GroupOfCommandTopic(topic string) (Group, bool) {
	rest, ok := strings.CutPrefix(topic, t.p()+"/cmd/")
	if !ok {
		return "", false
	}
	if rest == "all" || strings.HasPrefix(rest, "all/") {
		return GroupAll, true
	}
	parts := strings.SplitN(rest, "/", 3)
	if len(parts) < 2 || (parts[0] != "t" && parts[0] != "v") || parts[1] == "" {
		return "", false
	}
	return Group(parts[0] + "/" + parts[1]), true
}

// VillageOfTopic returns the village code at the end of an events or
// presence topic.
func (t Topics) VillageOfTopic(topic string) (string, bool) {
	for _, kind := range []string{"/evt/", "/presence/"} {
		if rest, ok := strings.CutPrefix(topic, t.p()+kind); ok && rest != "" && !strings.Contains(rest, "/") {
			return rest, true
		}
	}
	return "", false
}

// BoxMay reports whether the box of village may subscribe to (publish=false)
// or publish to (publish=true) the topic or filter. Brokers use it as the
// access-control list: a box reads only its own groups' commands and live
// frames, and writes only its own reports and presence.
func (t Topics) BoxMay(village, topic string, publish bool) bool {
	// Fail closed on a village that is not a code: "" or "#" would make
	// roots such as cmd/t/ or cmd/v/# below.
	if !ValidVillageCode(village) {
		return false
	}
	if publish {
		return topic == t.Events(village) || topic == t.Presence(village)
	}
	if strings.ContainsAny(topic, "+") {
		return false
	}
	for _, g := range GroupsOf(village) {
		// Its groups' commands, and their live sessions' frames.
		for _, root := range []string{fmt.Sprintf("%s/cmd/%s", t.p(), g), fmt.Sprintf("%s/live/%s", t.p(), g)} {
			if topic == root+"/#" || (strings.HasPrefix(topic, root+"/") && !strings.Contains(topic[len(root):], "#")) {
				return true
			}
		}
	}
	return false
}

// BoxMayRetain reports whether the box of village may publish a retained
// message (or clear one, with an empty payload) on topic: only its own
// presence, which its Last Will also sets. Retained state under cmd/ is
// the controller's alone, and a report is never retained. A broker checks
// it on every retained publish and on the Will at CONNECT, besides BoxMay.
func (t Topics) BoxMayRetain(village, topic string) bool {
	return ValidVillageCode(village) && topic == t.Presence(village)
}

// GroupsFor returns the fewest groups whose union reaches the agent boxes
// the targets select: one county-wide group, a township group per township
// (by the 9-digit prefix of its villages' codes) or single villages.
// Publishing one retained command per group, instead of one per village,
// is what keeps scheduling a whole county to a handful of messages.
//
// villages is every village of the installation. A township group is used
// only when every box under that prefix is selected, so a box outside the
// targets never hears it; villages without a box (DeviceManual) neither
// need a group nor stand in the way of one. A code in t.Villages that is
// not among villages still gets its own village group.
func GroupsFor(t playlists.Targets, villages []playlists.Village) []Group {
	if t.All {
		return []Group{GroupAll}
	}
	var out []Group
	seen := map[Group]bool{}
	add := func(g Group) {
		if !seen[g] {
			seen[g] = true
			out = append(out, g)
		}
	}
	selected := map[string]bool{}
	for _, v := range t.Select(villages) {
		selected[v.Code] = true
	}
	hasBox := func(v playlists.Village) bool { return v.Device != playlists.DeviceManual }
	whole := map[string]bool{} // township prefix → every box under it selected
	for _, v := range villages {
		if !hasBox(v) {
			continue
		}
		p := TownshipCode(v.Code)
		if _, ok := whole[p]; !ok {
			whole[p] = true
		}
		if !selected[v.Code] {
			whole[p] = false
		}
	}
	known := map[string]bool{}
	for _, v := range villages {
		known[v.Code] = true
		if !selected[v.Code] || !hasBox(v) {
			continue
		}
		if p := TownshipCode(v.Code); whole[p] {
			add(TownshipGroup(p))
		} else {
			add(VillageGroup(v.Code))
		}
	}
	for _, c := range t.Villages {
		if !known[c] {
			add(VillageGroup(c))
		}
	}
	return out
}
