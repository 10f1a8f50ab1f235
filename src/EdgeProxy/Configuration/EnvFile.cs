namespace EdgeProxy.Configuration;

/// <summary>
/// Reads a dotenv file the way python-dotenv (the replaced product's loader) does for the forms
/// that occur in practice: `KEY=VALUE`, `export KEY=VALUE`, `#` comments, inline ` # comment`
/// after unquoted values, single quotes (literal but for \\ and \') and double quotes (with \n, \t,
/// \" and python-dotenv's other escapes; an unknown escape keeps its backslash).
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
            var rest = line[(eq + 1)..];
            var spaced = rest.Length > 0 && char.IsWhiteSpace(rest[0]);
            if (TryParseValue(rest.Trim(), spaced, out var value) is { } problem)
            {
                errors.Add(new ConfigError($"{source}:{i + 1}", $"{problem} for {key}"));
                continue;
            }
            values[key] = value;
        }
        return values;
    }

    private static bool IsValidKey(string key)
        => key.Length > 0 && key.All(c => char.IsAsciiLetterOrDigit(c) || c is '_' or '.' or '-');

    /// <summary>Returns null on success, else what is wrong with the value.</summary>
    /// <param name="spaced">Whitespace separated the value from '=' (then a leading '#' starts a comment).</param>
    private static string? TryParseValue(string raw, bool spaced, out string value)
    {
        if (raw.Length > 0 && (raw[0] == '"' || raw[0] == '\''))
        {
            // python-dotenv decodes \\ \' \" \a \b \f \n \r \t \v in double quotes and only \\ and \' in
            // single quotes; any other backslash is kept as typed (e.g. "C:\Users" or a key containing '\').
            var quote = raw[0];
            var sb = new System.Text.StringBuilder();
            for (var i = 1; i < raw.Length; i++)
            {
                var c = raw[i];
                if (c == quote)
                {
                    // Only a comment may follow the closing quote.
                    var tail = raw.AsSpan(i + 1).TrimStart();
                    value = sb.ToString();
                    return tail.IsEmpty || tail[0] == '#' ? null : "unexpected text after the closing quote";
                }
                if (c == '\\' && i + 1 < raw.Length)
                {
                    char? decoded = (quote, raw[i + 1]) switch
                    {
                        (_, '\\') => '\\',
                        (_, '\'') => '\'',
                        ('"', '"') => '"',
                        ('"', 'n') => '\n',
                        ('"', 't') => '\t',
                        ('"', 'r') => '\r',
                        ('"', 'a') => '\a',
                        ('"', 'b') => '\b',
                        ('"', 'f') => '\f',
                        ('"', 'v') => '\v',
                        _ => null,
                    };
                    if (decoded is char d)
                    {
                        sb.Append(d);
                        i++;
                        continue;
                    }
                }
                sb.Append(c);
            }
            value = "";
            return "unterminated quoted value";
        }

        // Unquoted: a '#' preceded by whitespace starts a comment (python-dotenv semantics),
        // e.g. `BACKEND_AUTH_MODE=Authorization # or x-api-key` from the seed README. A '#' right
        // after '=' is part of the value (`BACKEND_API_KEY=#k3y` must not turn auth off).
        for (var i = 0; i < raw.Length; i++)
        {
            if (raw[i] == '#' && (i == 0 ? spaced : char.IsWhiteSpace(raw[i - 1])))
            {
                raw = raw[..i];
                break;
            }
        }
        value = raw.Trim();
        return null;
    }
}
