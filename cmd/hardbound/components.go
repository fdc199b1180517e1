package main

import "hardbound/admin"

// startComponents starts RADIUS and enrollment.
func (in *instance) startComponents() error {
	return nil
}

func (in *instance) adminDeps() admin.Deps {
	return admin.Deps{Store: in.posture.Store(), Standing: in.posture}
}
