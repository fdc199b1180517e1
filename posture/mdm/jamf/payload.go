// Package jamf receives Jamf Pro webhooks and turns smart-group membership
// and inventory events into compliance reports.
//
// Jamf Pro has no compliance flag of its own; hardbound models
// "noncompliant" as membership of admin-named smart groups (docs/mdm.md
// §3.1). A device entering such a group is noncompliant; leaving it is
// compliant. Inventory and check-in events carry no membership, so they act
// only when a GroupLookup (the Jamf Pro API) is configured to confirm
// membership; otherwise they are acknowledged and ignored.
package jamf

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// Jamf Pro webhook event names handled here.
const (
	EventComputerInventoryCompleted   = "ComputerInventoryCompleted"
	EventComputerCheckIn              = "ComputerCheckIn"
	EventComputerAdded                = "ComputerAdded"
	EventMobileDeviceCheckIn          = "MobileDeviceCheckIn"
	EventMobileDeviceEnrolled         = "MobileDeviceEnrolled"
	EventMobileDeviceInventory        = "MobileDeviceInventoryCompleted"
	EventMobileDeviceUnEnrolled       = "MobileDeviceUnEnrolled"
	EventSmartGroupComputerChange     = "SmartGroupComputerMembershipChange"
	EventSmartGroupMobileDeviceChange = "SmartGroupMobileDeviceMembershipChange"
)

// DeviceType is a Jamf inventory type.
type DeviceType string

const (
	Computer     DeviceType = "computer"
	MobileDevice DeviceType = "mobile_device"
)

// Device is a Jamf device as named in a webhook.
type Device struct {
	Type   DeviceType
	JSSID  int
	Serial string
	UDID   string
}

// GroupChange is a smart-group membership change.
type GroupChange struct {
	Type    DeviceType
	GroupID int // event.jssid (and smart_group_id since Jamf Pro 10.48)
	Name    string
	Added   []Device
	Removed []Device
}

// Payload is a parsed webhook: exactly one of Device or Group is set for
// the events handled; other events have neither.
type Payload struct {
	Event     string
	WebhookID int
	Device    *Device
	Group     *GroupChange
}

// maxDevicesPerEvent bounds a membership change; the body cap bounds it too.
const maxDevicesPerEvent = 50_000

// flexInt accepts a JSON number or a numeric string (Jamf versions differ).
type flexInt int

func (f *flexInt) UnmarshalJSON(b []byte) error {
	b = bytes.Trim(b, `"`)
	if len(b) == 0 || string(b) == "null" {
		*f = 0
		return nil
	}
	n, err := strconv.ParseInt(string(b), 10, 32)
	if err != nil {
		return fmt.Errorf("jamf: not an integer: %.20q", b)
	}
	*f = flexInt(n)
	return nil
}

type rawDevice struct {
	JSSID        flexInt `json:"jssID"`
	SerialNumber string  `json:"serialNumber"`
	UDID         string  `json:"udid"`
}

type rawGroup struct {
	Computer          bool              `json:"computer"`
	JSSID             flexInt           `json:"jssid"`
	SmartGroupID      flexInt           `json:"smart_group_id"`
	Name              string            `json:"name"`
	AddedDevices      []json.RawMessage `json:"groupAddedDevices"`
	AddedDevicesIDs   []flexInt         `json:"groupAddedDevicesIds"`
	RemovedDevices    []json.RawMessage `json:"groupRemovedDevices"`
	RemovedDevicesIDs []flexInt         `json:"groupRemovedDevicesIds"`
}

// ErrMalformed wraps every parse failure.
var ErrMalformed = errors.New("jamf: malformed webhook")

// ParsePayload decodes a Jamf Pro JSON webhook: {"webhook": {...}, "event": {...}}.
func ParsePayload(body []byte) (*Payload, error) {
	var env struct {
		Webhook struct {
			ID           flexInt `json:"id"`
			Name         string  `json:"name"`
			WebhookEvent string  `json:"webhookEvent"`
			SmartGroupID flexInt `json:"smart_group_id"`
		} `json:"webhook"`
		Event json.RawMessage `json:"event"`
	}
	if err := json.Unmarshal(body, &env); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	p := &Payload{Event: env.Webhook.WebhookEvent, WebhookID: int(env.Webhook.ID)}
	if p.Event == "" {
		return nil, fmt.Errorf("%w: webhook.webhookEvent missing", ErrMalformed)
	}
	if len(env.Event) == 0 || string(env.Event) == "null" {
		return nil, fmt.Errorf("%w: event missing", ErrMalformed)
	}
	switch p.Event {
	case EventComputerInventoryCompleted, EventComputerAdded:
		d, err := parseDevice(env.Event, Computer)
		if err != nil {
			return nil, err
		}
		p.Device = d
	case EventComputerCheckIn:
		var wrap struct {
			Computer json.RawMessage `json:"computer"`
		}
		if err := json.Unmarshal(env.Event, &wrap); err != nil || len(wrap.Computer) == 0 {
			return nil, fmt.Errorf("%w: event.computer missing", ErrMalformed)
		}
		d, err := parseDevice(wrap.Computer, Computer)
		if err != nil {
			return nil, err
		}
		p.Device = d
	case EventMobileDeviceCheckIn, EventMobileDeviceEnrolled, EventMobileDeviceInventory, EventMobileDeviceUnEnrolled:
		d, err := parseDevice(env.Event, MobileDevice)
		if err != nil {
			return nil, err
		}
		p.Device = d
	case EventSmartGroupComputerChange, EventSmartGroupMobileDeviceChange:
		var g rawGroup
		if err := json.Unmarshal(env.Event, &g); err != nil {
			return nil, fmt.Errorf("%w: %v", ErrMalformed, err)
		}
		typ := MobileDevice
		if p.Event == EventSmartGroupComputerChange {
			typ = Computer
		}
		gc := &GroupChange{Type: typ, GroupID: int(g.JSSID), Name: g.Name}
		if g.SmartGroupID != 0 {
			gc.GroupID = int(g.SmartGroupID)
		} else if gc.GroupID == 0 && env.Webhook.SmartGroupID != 0 {
			gc.GroupID = int(env.Webhook.SmartGroupID)
		}
		if gc.GroupID == 0 && gc.Name == "" {
			return nil, fmt.Errorf("%w: smart group has neither id nor name", ErrMalformed)
		}
		var err error
		if gc.Added, err = members(typ, g.AddedDevicesIDs, g.AddedDevices); err != nil {
			return nil, err
		}
		if gc.Removed, err = members(typ, g.RemovedDevicesIDs, g.RemovedDevices); err != nil {
			return nil, err
		}
		p.Group = gc
	}
	return p, nil
}

func parseDevice(raw json.RawMessage, typ DeviceType) (*Device, error) {
	var rd rawDevice
	if err := json.Unmarshal(raw, &rd); err != nil {
		return nil, fmt.Errorf("%w: device: %v", ErrMalformed, err)
	}
	d := &Device{Type: typ, JSSID: int(rd.JSSID), Serial: rd.SerialNumber, UDID: rd.UDID}
	if d.JSSID == 0 && d.Serial == "" && d.UDID == "" {
		return nil, fmt.Errorf("%w: device without jssID, serialNumber or udid", ErrMalformed)
	}
	return d, nil
}

// members joins the id list with the optional per-device objects (display
// fields, whose names vary: "udid", "UDID", "Serial Number", "serialNumber").
func members(typ DeviceType, ids []flexInt, objs []json.RawMessage) ([]Device, error) {
	if len(ids)+len(objs) > maxDevicesPerEvent {
		return nil, fmt.Errorf("%w: more than %d devices in one event", ErrMalformed, maxDevicesPerEvent)
	}
	out := make([]Device, 0, max(len(ids), len(objs)))
	for i, id := range ids {
		d := Device{Type: typ, JSSID: int(id)}
		if i < len(objs) {
			fillFromObject(&d, objs[i])
		}
		out = append(out, d)
	}
	for i := len(ids); i < len(objs); i++ {
		d := Device{Type: typ}
		fillFromObject(&d, objs[i])
		if d.JSSID != 0 || d.Serial != "" || d.UDID != "" {
			out = append(out, d)
		}
	}
	return out, nil
}

func fillFromObject(d *Device, raw json.RawMessage) {
	var m map[string]any
	if json.Unmarshal(raw, &m) != nil {
		return // a bare id or null: the ids list names the device
	}
	for k, v := range m {
		key := strings.ToLower(strings.NewReplacer(" ", "", "_", "").Replace(k))
		var s string
		switch x := v.(type) {
		case string:
			s = x
		case float64:
			s = strconv.FormatInt(int64(x), 10)
		default:
			continue
		}
		switch key {
		case "udid":
			d.UDID = s
		case "serialnumber", "serial":
			d.Serial = s
		case "jssid", "id":
			if d.JSSID == 0 {
				if n, err := strconv.Atoi(s); err == nil {
					d.JSSID = n
				}
			}
		}
	}
}
