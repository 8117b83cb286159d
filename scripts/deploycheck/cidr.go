package main

import "net/netip"

// cidrWithin reports whether inner lies inside outer.
func cidrWithin(inner, outer string) bool {
	in, err1 := netip.ParsePrefix(inner)
	out, err2 := netip.ParsePrefix(outer)
	if err1 != nil || err2 != nil || in.Addr().Is4() != out.Addr().Is4() {
		return false
	}
	return in.Bits() >= out.Bits() && out.Contains(in.Addr())
}
