"""The add-on itself: partners, the cross-attention mask, its loss term, the spatial map and
the mechanism metrics. Independent of any one host method."""
