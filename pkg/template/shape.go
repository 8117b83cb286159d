package template

import "github.com/postback-dev/postback/pkg/event"

// Shape is what a template writes, as a function of its event: the text of
// its own, and how many times it writes each value. pkg/render turns it
// into the worst case of an endpoint's request (render.EventBounds).
type Shape struct {
	// Fixed is the template's own text in bytes: each literal once, and a
	// join's literals and separator once per item.
	Fixed int64
	// Uses counts how many times each value is written: a top-level data
	// point by its name (once per use outside a join, once per item per use
	// inside one), and the values of an item field, every item's together,
	// as "items.<field>" (once per use: each join writes each item once).
	Uses map[string]int64
}

// ItemFieldKey is the key of an item field's values in Shape.Uses.
func ItemFieldKey(field string) string { return event.ItemsName + "." + field }

// Shape returns what the template writes for an event with items items.
func (t *Template) Shape(items int) Shape {
	sh := Shape{Uses: map[string]int64{}}
	shapeSegments(&sh, t.segs, 1, int64(max(items, 0)))
	return sh
}

// shapeSegments adds segs, written times times, to sh.
func shapeSegments(sh *Shape, segs []segment, times, items int64) {
	for i := range segs {
		s := &segs[i]
		switch s.kind {
		case segLiteral:
			sh.Fixed += times * int64(len(s.text))
		case segField:
			sh.Uses[s.text] += times
		case segItemField:
			// Only inside a join, and joins do not nest: one use writes
			// each item's value once, so every item's value together once.
			sh.Uses[ItemFieldKey(s.text)]++
		case segJoin:
			if items == 0 {
				continue
			}
			sh.Fixed += (items - 1) * int64(len(s.sep))
			shapeSegments(sh, s.inner, times*items, items)
		}
	}
}
