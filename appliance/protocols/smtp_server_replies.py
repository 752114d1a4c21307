"""The replies the SMTP server core sends by itself, as named constants.

Tests and callers compare against these names instead of spelling codes out.
Codes follow RFC 5321 §4.2 and the enhanced status codes RFC 3463 / RFC 5248.
"""

from __future__ import annotations

from appliance.protocols.smtp_reply import Reply

# Positive replies.
OK = Reply.build(250, "2.0.0", "OK")
SENDER_OK = Reply.build(250, "2.1.0", "Sender OK")
RECIPIENT_OK = Reply.build(250, "2.1.5", "Recipient OK")
MESSAGE_ACCEPTED = Reply.build(250, "2.0.0", "OK: message accepted")
START_MAIL_INPUT = Reply.build(354, None, "End data with <CR><LF>.<CR><LF>")
READY_TO_START_TLS = Reply.build(220, "2.0.0", "Ready to start TLS")
AUTH_SUCCEEDED = Reply.build(235, "2.7.0", "Authentication successful")
AUTH_CONTINUE = Reply(334, ("",))
AUTH_LOGIN_USERNAME = Reply(334, ("VXNlcm5hbWU6",))  # base64 "Username:"
AUTH_LOGIN_PASSWORD = Reply(334, ("UGFzc3dvcmQ6",))  # base64 "Password:"
CANNOT_VRFY = Reply.build(
    252, "2.5.0", "Cannot VRFY user, but will accept message and attempt delivery"
)
HELP = Reply.build(
    214, "2.0.0", "Commands: EHLO HELO STARTTLS AUTH MAIL RCPT DATA RSET NOOP VRFY HELP QUIT"
)
BYE = Reply.build(221, "2.0.0", "Bye")

# Closing the connection on our initiative (RFC 5321 §3.8: 421 may come at any time).
TOO_MANY_ERRORS = Reply.build(421, "4.7.0", "Too many errors, closing connection")
TOO_MANY_COMMANDS = Reply.build(
    421, "4.7.0", "Too many commands without a mail transaction, closing connection"
)
IDLE_TIMEOUT = Reply.build(421, "4.4.2", "Idle timeout, closing connection")
SHUTTING_DOWN = Reply.build(421, "4.3.2", "Service shutting down, closing connection")
INTERNAL_ERROR = Reply.build(421, "4.3.0", "Local error in processing, closing connection")

# The client's syntax.
LINE_TOO_LONG = Reply.build(500, "5.5.2", "Line too long")
BARE_LINE_ENDING_IN_COMMAND = Reply.build(
    500, "5.5.2", "Command lines must end with <CR><LF>, without bare <CR> or <LF>"
)
INVALID_COMMAND_BYTES = Reply.build(500, "5.5.2", "Command is not valid UTF-8 text")
EMPTY_COMMAND = Reply.build(500, "5.5.2", "Empty command")
UNKNOWN_COMMAND = Reply.build(500, "5.5.1", "Command unrecognized")
NOT_IMPLEMENTED = Reply.build(502, "5.5.1", "Command not implemented")
STARTTLS_UNAVAILABLE = Reply.build(502, "5.5.1", "STARTTLS not available")
AUTH_UNAVAILABLE = Reply.build(502, "5.5.1", "AUTH not available")
HELO_SYNTAX = Reply.build(501, "5.5.4", "Syntax: EHLO hostname")
NO_ARGUMENTS_ALLOWED = Reply.build(501, "5.5.4", "This command takes no arguments")
VRFY_SYNTAX = Reply.build(501, "5.5.4", "Syntax: VRFY address")
MAIL_SYNTAX = Reply.build(501, "5.5.4", "Syntax: MAIL FROM:<address> [parameters]")
RCPT_SYNTAX = Reply.build(501, "5.5.4", "Syntax: RCPT TO:<address> [parameters]")
PARAMETER_SYNTAX = Reply.build(501, "5.5.4", "Malformed or repeated ESMTP parameter")
PARAMETER_UNSUPPORTED = Reply.build(555, "5.5.4", "ESMTP parameter not recognized")
BAD_SENDER_ADDRESS = Reply.build(501, "5.1.7", "Bad sender address syntax")
BAD_RECIPIENT_ADDRESS = Reply.build(501, "5.1.3", "Bad recipient address syntax")
NON_ASCII_ADDRESS = Reply.build(
    553, "5.6.7", "Non-ASCII addresses need the SMTPUTF8 parameter on MAIL FROM"
)
AUTH_MECHANISM_UNKNOWN = Reply.build(504, "5.5.4", "Unrecognized authentication mechanism")
AUTH_SYNTAX = Reply.build(501, "5.5.2", "Cannot decode the authentication response")
AUTH_CANCELLED = Reply.build(501, "5.7.0", "Authentication cancelled")

# Sequence.
BAD_SEQUENCE = Reply.build(503, "5.5.1", "Bad sequence of commands")
HELO_FIRST = Reply.build(503, "5.5.1", "Send EHLO or HELO first")
SENDER_ALREADY_GIVEN = Reply.build(503, "5.5.1", "Sender already specified")
MAIL_FIRST = Reply.build(503, "5.5.1", "Need MAIL before RCPT")
RCPT_FIRST = Reply.build(503, "5.5.1", "Need RCPT before DATA")
NO_VALID_RECIPIENTS = Reply.build(554, "5.5.1", "No valid recipients")
AUTH_IN_TRANSACTION = Reply.build(503, "5.5.1", "AUTH not allowed during a mail transaction")
ALREADY_AUTHENTICATED = Reply.build(503, "5.5.1", "Already authenticated")
TLS_ALREADY_ACTIVE = Reply.build(503, "5.5.1", "TLS already active")
STARTTLS_IN_TRANSACTION = Reply.build(503, "5.5.1", "STARTTLS not allowed during a transaction")
NO_SERVICE_SEND_QUIT = Reply.build(503, "5.5.1", "No service here, send QUIT")

# Authentication.
AUTH_REQUIRED = Reply.build(530, "5.7.0", "Authentication required")
STARTTLS_FIRST = Reply.build(530, "5.7.0", "Must issue a STARTTLS command first")
AUTH_FAILED = Reply.build(535, "5.7.8", "Authentication credentials invalid")

# Limits and content.
TOO_MANY_RECIPIENTS = Reply.build(452, "4.5.3", "Too many recipients")
MESSAGE_TOO_BIG = Reply.build(552, "5.3.4", "Message size exceeds fixed maximum message size")
# 5.6.11 is not in the IANA registry; it is the code Exchange Online answers bare
# line feeds with, and the one clients and operators recognise for this fault.
BARE_LINE_ENDING_IN_DATA = Reply.build(
    550, "5.6.11", "Message contains bare <CR> or <LF>; lines must end with <CR><LF>"
)
