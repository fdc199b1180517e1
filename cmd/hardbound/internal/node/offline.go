package node

import "hardbound/admin/offline"

// OfflineTokens is the token file `hardbound token --data-dir DIR
// --config FILE` edits while the server is stopped: in DIR, else the
// config's data_dir, and the config's admin.token_file. Without a config
// it is DIR's default token file.
func OfflineTokens(dataDir, cfgPath string) (offline.Tokens, error) {
	t := offline.Tokens{DataDir: dataDir}
	if cfgPath == "" {
		return t, nil
	}
	cfg, err := LoadConfig(cfgPath)
	if err != nil {
		return t, err
	}
	if t.DataDir == "" {
		t.DataDir = cfg.DataDir
	}
	t.File = cfg.Admin.TokenFile
	return t, nil
}
