// Verifies Agent Registry command events the way an agent must before it runs one
// (docs/security.md, "Verifying commands in a Java agent"). JDK 17 standard library only.
//
//   java VerifyCommandEvent.java KEYS.json AGENT_ID GROUP < events
//
// KEYS.json: the registration answer's "serverPublicKeys" array. Standard input: event
// data lines, or a raw event stream (the other SSE lines are skipped). Prints one verdict
// per event and exits with the last one's code: 0 means run it.

import java.io.BufferedReader;
import java.io.InputStreamReader;
import java.math.BigDecimal;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.GeneralSecurityException;
import java.security.KeyFactory;
import java.security.PublicKey;
import java.security.Signature;
import java.security.spec.X509EncodedKeySpec;
import java.time.Instant;
import java.util.ArrayList;
import java.util.Base64;
import java.util.HashMap;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;

public class VerifyCommandEvent {
    // One exit code per verdict.
    static final int RUN = 0, USAGE = 2, MALFORMED = 3, UNSIGNED = 4, UNKNOWN_KEY = 5,
            BAD_SIGNATURE = 6, NOT_FOR_ME = 7, EXPIRED = 8, ALREADY_RUN = 9;

    record Verdict(int code, String text) {}

    public static void main(String[] args) throws Exception {
        if (args.length != 3) {
            System.err.println("usage: java VerifyCommandEvent.java KEYS.json AGENT_ID GROUP"
                    + " < events");
            System.exit(USAGE);
        }
        Map<String, PublicKey> keys = publishedKeys(Files.readString(Path.of(args[0])));
        Set<String> alreadyRun = new HashSet<>();
        var in = new BufferedReader(new InputStreamReader(System.in, StandardCharsets.UTF_8));
        int last = USAGE; // no event at all
        String eventType = null;
        for (String line; (line = in.readLine()) != null; ) {
            if (line.startsWith("event:")) eventType = line.substring(6).strip();
            if (line.startsWith("data:")) line = line.substring(5).strip();
            if (!line.startsWith("{")) continue; // id:, retry:, ": ping", blank lines
            if ("cancel".equals(eventType)) { // cancel events are not signed
                eventType = null;
                continue;
            }
            eventType = null;
            Verdict verdict = verify(line, keys, args[1], args[2], Instant.now(), alreadyRun);
            System.out.println(verdict.code() + " " + verdict.text());
            last = verdict.code();
        }
        System.exit(last);
    }

    /** keyId -> key, from the published key objects {"keyId", "algorithm", "publicKey"}. */
    static Map<String, PublicKey> publishedKeys(String json) throws GeneralSecurityException {
        Map<String, PublicKey> keys = new HashMap<>();
        KeyFactory factory = KeyFactory.getInstance("Ed25519");
        for (Object item : (List<?>) Json.parse(json)) {
            Map<?, ?> key = (Map<?, ?>) item;
            if (!"Ed25519".equals(key.get("algorithm"))) continue;
            byte[] der = Base64.getDecoder().decode((String) key.get("publicKey"));
            PublicKey publicKey = factory.generatePublic(new X509EncodedKeySpec(der));
            keys.put((String) key.get("keyId"), publicKey);
        }
        return keys;
    }

    /** Whether to run the command in one event's data; a refusal says why. */
    static Verdict verify(String data, Map<String, PublicKey> keys, String agentId, String group,
                          Instant now, Set<String> alreadyRun) {
        try {
            Map<?, ?> event = (Map<?, ?>) Json.parse(data);
            if (!(event.get("signature") instanceof Map<?, ?> signature)) {
                return new Verdict(UNSIGNED, "refused: the event carries no signature");
            }
            PublicKey key = keys.get(signature.get("keyId"));
            if (key == null) {
                // The server has a key this agent has not seen: register again to learn it.
                return new Verdict(UNKNOWN_KEY, "refused: unknown keyId " + signature.get("keyId"));
            }
            byte[] signed = Base64.getDecoder().decode((String) signature.get("signed"));
            Signature ed25519 = Signature.getInstance("Ed25519");
            ed25519.initVerify(key);
            ed25519.update(signed);
            if (!ed25519.verify(Base64.getDecoder().decode((String) signature.get("value")))) {
                return new Verdict(BAD_SIGNATURE, "refused: the signature does not match");
            }
            // From here on only the signed bytes count: the rest of the event is ignored.
            Map<?, ?> command = (Map<?, ?>) Json.parse(new String(signed, StandardCharsets.UTF_8));
            String id = (String) command.get("commandId");
            Map<?, ?> target = (Map<?, ?>) command.get("target");
            boolean forMe = switch ((String) target.get("kind")) {
                case "agent" -> agentId.equals(target.get("value"));
                case "group" -> group.equals(target.get("value"));
                case "all" -> true;
                default -> false;
            };
            if (!forMe) {
                return new Verdict(NOT_FOR_ME, "refused: " + id + " targets "
                        + target.get("kind") + " " + target.get("value"));
            }
            String expiresAt = (String) command.get("expiresAt");
            if (!now.isBefore(Instant.parse(expiresAt))) {
                return new Verdict(EXPIRED, "refused: " + id + " expired at " + expiresAt);
            }
            if (!alreadyRun.add(id)) {
                return new Verdict(ALREADY_RUN, "refused: " + id + " has already run");
            }
            return new Verdict(RUN, "run " + command.get("type") + " " + id + " "
                    + command.get("payload"));
        } catch (GeneralSecurityException e) { // a signature of the wrong length, say
            return new Verdict(BAD_SIGNATURE, "refused: the signature does not match (" + e + ")");
        } catch (RuntimeException e) { // not JSON, a field missing or of the wrong type
            return new Verdict(MALFORMED, "refused: malformed event (" + e + ")");
        }
    }

    /** Just enough JSON for these messages: objects, arrays, strings, numbers, literals. */
    static final class Json {
        private final String s;
        private int i;

        private Json(String s) { this.s = s; }

        static Object parse(String text) {
            Json json = new Json(text);
            Object value = json.value();
            if (json.skipSpace() != text.length()) throw json.error("trailing text");
            return value;
        }

        private Object value() {
            char c = s.charAt(skipSpace());
            if (c == '{') {
                Map<String, Object> members = new LinkedHashMap<>();
                if (!close('{', '}')) do {
                    skipSpace();
                    String name = string();
                    expect(':');
                    if (members.put(name, value()) != null) throw error("duplicate " + name);
                } while (next(',', '}'));
                return members;
            }
            if (c == '[') {
                List<Object> items = new ArrayList<>();
                if (!close('[', ']')) do items.add(value()); while (next(',', ']'));
                return items;
            }
            if (c == '"') return string();
            for (String literal : new String[] {"true", "false", "null"}) {
                if (s.startsWith(literal, i)) {
                    i += literal.length();
                    return literal.equals("null") ? null : Boolean.valueOf(literal);
                }
            }
            int start = i;
            while (i < s.length() && "+-0123456789.eE".indexOf(s.charAt(i)) >= 0) i++;
            return new BigDecimal(s.substring(start, i)); // throws on anything else
        }

        private String string() {
            expect('"');
            StringBuilder out = new StringBuilder();
            for (char c; (c = s.charAt(i++)) != '"'; ) {
                if (c != '\\') { out.append(c); continue; }
                c = s.charAt(i++);
                switch (c) {
                    case 'b' -> out.append('\b');
                    case 'f' -> out.append('\f');
                    case 'n' -> out.append('\n');
                    case 'r' -> out.append('\r');
                    case 't' -> out.append('\t');
                    case 'u' -> {
                        out.append((char) Integer.parseInt(s.substring(i, i + 4), 16));
                        i += 4;
                    }
                    default -> out.append(c); // \" \\ \/
                }
            }
            return out.toString();
        }

        private int skipSpace() {
            while (i < s.length() && " \t\r\n".indexOf(s.charAt(i)) >= 0) i++;
            return i;
        }

        /** Consumes the opening bracket; true (and consumes it) if the closing one follows. */
        private boolean close(char open, char closing) {
            expect(open);
            if (s.charAt(skipSpace()) != closing) return false;
            i++;
            return true;
        }

        /** After an item: true on a comma, false on the closing bracket. */
        private boolean next(char comma, char closing) {
            char c = s.charAt(skipSpace());
            i++;
            if (c == comma) return true;
            if (c == closing) return false;
            throw error("expected '" + comma + "' or '" + closing + "'");
        }

        private void expect(char c) {
            if (s.charAt(skipSpace()) != c) throw error("expected '" + c + "'");
            i++;
        }

        private IllegalArgumentException error(String what) {
            return new IllegalArgumentException(what + " at offset " + i);
        }
    }
}
