// Package intune polls Microsoft Intune through Microsoft Graph
// (deviceManagement/managedDevices, complianceState) and reports compliance
// changes. Graph change notifications do not cover managedDevice
// (docs/mdm.md §4.1), so hardbound pulls.
//
// Authentication is OAuth 2.0 client credentials against Entra ID for an app
// holding DeviceManagementManagedDevices.Read.All. The bearer token is only
// ever sent to the configured Graph origin: an @odata.nextLink pointing
// elsewhere is an error.
package intune

import (
	"encoding/json"
	"errors"
	"fmt"

	"hardbound/store"
)

// ManagedDevice is the subset of Graph's managedDevice that hardbound reads.
type ManagedDevice struct {
	ID              string `json:"id"`
	AzureADDeviceID string `json:"azureADDeviceId"`
	SerialNumber    string `json:"serialNumber"`
	ComplianceState string `json:"complianceState"`
	// Read by the inventory listing (inventory.go) only.
	OperatingSystem           string `json:"operatingSystem"`
	ManagementState           string `json:"managementState"`
	DeviceCategoryDisplayName string `json:"deviceCategoryDisplayName"`
	UserPrincipalName         string `json:"userPrincipalName"`
}

// Page is one Graph collection page.
type Page struct {
	Value    []ManagedDevice `json:"value"`
	NextLink string          `json:"@odata.nextLink"`
}

// ErrMalformed wraps Graph/token bodies that cannot be used.
var ErrMalformed = errors.New("intune: malformed response")

// maxPageDevices bounds one page (Graph pages are at most 1000).
const maxPageDevices = 5000

// ParsePage decodes a managedDevices page.
func ParsePage(body []byte) (*Page, error) {
	var p Page
	if err := json.Unmarshal(body, &p); err != nil {
		return nil, fmt.Errorf("%w: page: %v", ErrMalformed, err)
	}
	if p.Value == nil {
		return nil, fmt.Errorf("%w: page without value array", ErrMalformed)
	}
	if len(p.Value) > maxPageDevices {
		return nil, fmt.Errorf("%w: %d devices in one page", ErrMalformed, len(p.Value))
	}
	return &p, nil
}

// MapCompliance maps Graph's complianceState to hardbound's states.
// inGracePeriod counts as compliant (Intune itself grants access during the
// grace period); conflict, error, configManager and unknown carry no
// verdict and map to unknown, which the profile's Unknown action governs.
func MapCompliance(s string) store.Compliance {
	switch s {
	case "compliant", "inGracePeriod":
		return store.ComplianceCompliant
	case "noncompliant":
		return store.ComplianceNoncompliant
	default:
		return store.ComplianceUnknown
	}
}
