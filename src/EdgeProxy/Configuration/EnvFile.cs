namespace EdgeProxy.Configuration;

/// <summary>
/// Reads a dotenv file the way python-dotenv (the replaced product's loader) does for the forms
/// that occur in practice: `KEY=VALUE`, `export KEY=VALUE`, `#` comments, inline ` # comment`
/// after unquoted values, single quotes (literal) and double quotes (with \n, \t, \" and \\ escapes).
/// </summary>
internal static class EnvFile
{
    public static Dictionary<string, string> Parse(string text, string source, List<ConfigError> errors)
    {
        var values = new Dictionary<string, string>(StringComparer.Ordinal);
        var lines = text.Replace("\r\n", "\n").Split('\n');
        for (var i = 0; i < lines.Length; i++)
        {
            var line = lines[i].Trim();
            if (line.Length == 0 || line[0] == '#')
            {
                continue;
            }
            if (line.StartsWith("export ", StringComparison.Ordinal))
            {
                line = line["export ".Length..].TrimStart();
            }
            var eq = line.IndexOf('=');
            var key = eq > 0 ? line[..eq].Trim() : "";
            if (eq <= 0 || !IsValidKey(key))
            {
                errors.Add(new ConfigError($"{source}:{i + 1}", "expected KEY=VALUE"));
                continue;
            }
            if (!TryParseValue(line[(eq + 1)..].Trim(), out var value))
            {
                errors.Add(new ConfigError($"{source}:{i + 1}", $"unterminated quoted value for {key}"));
                continue;
            }
            values[key] = value;
        }
        return values;
    }

    private static bool IsValidKey(string key)
    {
        foreach (var c in key)
        {
            if (!(char.IsAsciiLetterOrDigit(c) || c == '_' || c == '.' || c == '-'))
            {
                return false;
            }
        }
        return key.Length > 0;
    }

    private static bool TryParseValue(string raw, out string value)
    {
        if (raw.Length > 0 && (raw[0] == '"' || raw[0] == '\''))
        {
            var quote = raw[0];
            var sb = new System.Text.StringBuilder();
            for (var i = 1; i < raw.Length; i++)
            {
                var c = raw[i];
                if (c == quote)
                {
                    value = sb.ToString();
                    return true;
                }
                if (quote == '"' && c == '\\' && i + 1 < raw.Length)
                {
                    i++;
                    sb.Append(raw[i] switch { 'n' => '\n', 't' => '\t', 'r' => '\r', _ => raw[i] });
                    continue;
                }
                sb.Append(c);
            }
            value = "";
            return false;
        }

        // Unquoted: a '#' preceded by whitespace starts a comment (python-dotenv semantics),
        // e.g. `BACKEND_AUTH_MODE=Authorization # or x-api-key` from the seed README.
        for (var i = 0; i < raw.Length; i++)
        {
            if (raw[i] == '#' && (i == 0 || char.IsWhiteSpace(raw[i - 1])))
            {
                raw = raw[..i];
                break;
            }
        }
        value = raw.Trim();
        return true;
    }
}
