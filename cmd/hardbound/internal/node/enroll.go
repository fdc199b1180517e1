package node

import (
	"fmt"
	"net/http"
	"path/filepath"

	"hardbound/enroll"
	"hardbound/enroll/acme"
	"hardbound/enroll/attest"
	"hardbound/enroll/attest/attesttest"
	"hardbound/enroll/challenge"
	"hardbound/enroll/limit"
	"hardbound/enroll/ocsp"
	"hardbound/enroll/scep"
	"hardbound/store/config"
)

// enrollment is the wired enrollment side: ACME, SCEP, the challenge
// minter and the CRL.
type enrollment struct {
	svc      *enroll.Service
	minter   *scep.Minter
	verifier *attest.Verifier
	jamf     http.Handler // Jamf dynamic-challenge webhook, nil when unconfigured
	akca     http.Handler // TPM attestation CA, nil unless enroll.certify_tpm_aks applies
	ocsp     *ocsp.Responder
	est      http.Handler // /.well-known/est/, nil when enroll.est is disabled
}

// attestRoots loads the configured trust roots; in --dev the test authority
// in data/dev-attest is trusted in addition to the vendor roots.
func (in *Node) attestRoots() (attest.Roots, error) {
	r, err := in.cfg.Enroll.AttestRoots("enroll")
	if err != nil || !in.cfg.Dev {
		return r, err
	}
	auth, err := attesttest.LoadOrCreate(filepath.Join(in.cfg.DataDir, "dev-attest"))
	if err != nil {
		return r, fmt.Errorf("dev: test attestation authority: %w", err)
	}
	in.log.Warn("WARNING: --dev trusts the test attestation authority in data/dev-attest")
	auth.Trust(&r)
	return r, nil
}

func (in *Node) startEnroll() error {
	ec := in.cfg.Enroll
	if ec.HTTPSAddr == "" && ec.HTTPAddr == "" {
		return nil
	}
	m := in.metrics.Enroll()
	roots, err := in.attestRoots()
	if err != nil {
		return err
	}
	ownAKs := in.trustOwnAKs(&roots)
	verifier := attest.New(roots, append(in.androidOptions(), attest.WithLogger(in.log), attest.WithMetrics(m))...)
	lim := limit.New(ec.Limits(), limit.WithMetrics(m))
	st := in.st

	var intune scep.Validator
	if ic := in.cfg.MDM.Intune; ic.TenantID != "" {
		secret, err := config.ReadSecret("mdm.intune.client_secret_file", ic.ClientSecretFile)
		if err != nil {
			return err
		}
		v, err := challenge.NewIntune(challenge.IntuneConfig{TenantID: ic.TenantID, ClientID: ic.ClientID, ClientSecret: secret,
			LoginURL: ic.LoginURL, GraphURL: ic.GraphURL, CallerInfo: "hardbound " + in.cfg.Version, Logger: in.log})
		if err != nil {
			return err
		}
		intune = v
	}
	var acmeProfiles []acme.Profile
	var scepProfiles []scep.Profile
	var names []string
	for _, p := range in.cfg.effectiveProfiles() {
		names = append(names, p.Name)
		acmeProfiles = append(acmeProfiles, p.acmeView())
		scepProfiles = append(scepProfiles, p.scepView(intune))
	}
	ra, err := scep.LoadOrCreateRA(in.ctx, in.cfg.DataDir, in.ca)
	if err != nil {
		return fmt.Errorf("scep RA: %w", err)
	}
	g, err := in.issuanceGate()
	if err != nil {
		return err
	}
	scepH, err := scep.New(scep.Config{CA: in.ca, Store: st, RA: ra, Profiles: scepProfiles, Limiter: lim, Metrics: m, Logger: in.log, Gate: g})
	if err != nil {
		return err
	}
	minter, err := scep.NewMinter(scep.MinterConfig{Store: st, TPM: verifier, Profiles: names, DefaultProfile: names[0], Logger: in.log})
	if err != nil {
		return err
	}
	ocspR, err := in.startOCSP()
	if err != nil {
		return err
	}
	svc, err := enroll.New(enroll.Config{Profiles: acmeProfiles},
		enroll.Deps{CA: in.ca, Store: st, Attester: verifier, SCEP: scepH, Limiter: lim, Accounts: acme.StoreAccounts(st),
			Holds: in.crlHolds(ocspR), Gate: g},
		enroll.WithLogger(in.log), enroll.WithMetrics(m))
	if err != nil {
		return err
	}
	in.enroll = &enrollment{svc: svc, minter: minter, verifier: verifier}
	in.enroll.ocsp = ocspR
	if in.enroll.est, err = in.startEST(lim); err != nil {
		return err
	}
	if ownAKs {
		if in.enroll.akca, err = in.newAKCA(verifier, lim); err != nil {
			return err
		}
	}
	if jc := in.cfg.MDM.Jamf; jc.Username != "" && jc.ChallengeProfile != "" {
		pw, err := config.ReadSecret("mdm.jamf.password_file", jc.PasswordFile)
		if err != nil {
			return err
		}
		j, err := challenge.NewJamf(challenge.JamfConfig{Username: jc.Username, Password: pw, Profile: jc.ChallengeProfile,
			Minter: minter, Limiter: lim, Logger: in.log})
		if err != nil {
			return err
		}
		in.enroll.jamf = j
	}
	kp, err := in.ca.ServerCert(in.ctx, in.cfg.DataDir, "enroll", ec.ServerNames, true)
	if err != nil {
		return err
	}
	in.certExpiry("enroll", kp)
	if err := in.serveHTTP("enroll-https", ec.HTTPSAddr, in.enrollMux(svc.Handler()), estTLS(newTLSConfig(kp), in.enroll.est)); err != nil {
		return err
	}
	plain := http.NewServeMux()
	plain.Handle("/", svc.PlainHandler())
	mountOCSP(plain, in.enroll.ocsp)
	return in.serveHTTP("enroll-http", ec.HTTPAddr, plain, nil)
}

// enrollMux puts the MDM endpoints (webhooks, Jamf challenges) beside the
// enrollment service on the HTTPS listener.
func (in *Node) enrollMux(h http.Handler) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("/", h)
	if in.enroll.jamf != nil {
		mux.Handle("POST /mdm/jamf/challenge", in.enroll.jamf)
	}
	if in.enroll.akca != nil {
		mux.Handle(akcaPrefix+"/", in.enroll.akca)
	}
	mountOCSP(mux, in.enroll.ocsp)
	if in.enroll.est != nil {
		mux.Handle("/.well-known/est/", in.enroll.est)
	}
	for path, hh := range in.mdmHandlers {
		mux.Handle(path, hh)
	}
	return mux
}
