package desk

import "encoding/json"

func jsonObject(v map[string]any) (json.RawMessage, error) { return json.Marshal(v) }
