package config

// StripPositions drops the position index so tests can compare configs by value.
func StripPositions(c *Config) *Config {
	c.where, c.whereRouting = nil, nil
	return c
}
