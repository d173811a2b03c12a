package config

import "strings"

// keyLines maps each dotted key in a TOML document to the line where it is
// first written. The TOML library reports positions only for syntax errors,
// so errors found after parsing (unknown keys, ranges) need this to name the
// line. It runs only on documents that already parsed, so it can be lenient:
// it follows table headers, key/value lines and multi-line strings, and a
// key it cannot place is simply reported without a line.
func keyLines(doc string) map[string]int {
	out := map[string]int{}
	var table []string
	inString := "" // the delimiter of the multi-line string we are inside
	for i, line := range strings.Split(doc, "\n") {
		n := i + 1
		if inString != "" {
			if closesString(line, inString) {
				inString = ""
			}
			continue
		}
		s := strings.TrimSpace(line)
		if s == "" || s[0] == '#' {
			continue
		}
		if s[0] == '[' {
			inner := strings.TrimPrefix(s, "[")
			inner = strings.TrimPrefix(inner, "[")
			parts, _, ok := parseKey(inner)
			if !ok {
				continue
			}
			table = parts
			record(out, table, n)
			continue
		}
		parts, rest, ok := parseKey(s)
		if !ok || !strings.HasPrefix(rest, "=") {
			continue
		}
		record(out, append(append([]string{}, table...), parts...), n)
		val := strings.TrimSpace(rest[1:])
		for _, delim := range []string{`"""`, `'''`} {
			if strings.HasPrefix(val, delim) && !closesString(val[3:], delim) {
				inString = delim
			}
		}
	}
	return out
}

// record stores the line of a key and of each table it implies, keeping the
// first occurrence.
func record(out map[string]int, parts []string, line int) {
	for i := range parts {
		k := joinKey(parts[:i+1])
		if _, ok := out[k]; !ok {
			out[k] = line
		}
	}
}

func joinKey(parts []string) string {
	q := make([]string, len(parts))
	for i, p := range parts {
		q[i] = quoteKey(p)
	}
	return strings.Join(q, ".")
}

func closesString(s, delim string) bool {
	return strings.Contains(s, delim)
}

func isBareKeyChar(r rune) bool {
	return r == '_' || r == '-' || (r >= 'a' && r <= 'z') || (r >= 'A' && r <= 'Z') || (r >= '0' && r <= '9')
}

// parseKey reads a possibly dotted, possibly quoted key from the start of s
// and returns its parts and what follows it (trimmed).
func parseKey(s string) (parts []string, rest string, ok bool) {
	for {
		s = strings.TrimLeft(s, " \t")
		if s == "" {
			return nil, "", false
		}
		var part string
		switch s[0] {
		case '"':
			end := 1
			for end < len(s) && s[end] != '"' {
				if s[end] == '\\' {
					end++
				}
				end++
			}
			if end >= len(s) {
				return nil, "", false
			}
			part = unescapeBasic(s[1:end])
			s = s[end+1:]
		case '\'':
			end := strings.IndexByte(s[1:], '\'')
			if end < 0 {
				return nil, "", false
			}
			part = s[1 : end+1]
			s = s[end+2:]
		default:
			end := 0
			for end < len(s) && isBareKeyChar(rune(s[end])) {
				end++
			}
			if end == 0 {
				return nil, "", false
			}
			part = s[:end]
			s = s[end:]
		}
		parts = append(parts, part)
		s = strings.TrimLeft(s, " \t")
		if strings.HasPrefix(s, ".") {
			s = s[1:]
			continue
		}
		return parts, s, true
	}
}

// unescapeBasic undoes the common escapes of a TOML basic string key; keys
// needing others are rare enough to go without a line number.
func unescapeBasic(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	r := strings.NewReplacer(`\"`, `"`, `\\`, `\`, `\t`, "\t", `\n`, "\n")
	return r.Replace(s)
}
