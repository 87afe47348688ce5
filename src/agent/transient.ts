import { AgentError } from './errors.js';

/**
 * What a failing check is allowed to set off. A repair (restart sssd,
 * remount, rejoin) is for something broken on this VM; a domain controller
 * that is slow, restarting or briefly unreachable is broken for every VM of
 * the pool at once, and repairing then would make the whole pool rejoin
 * together (each rejoin resets the machine password and replaces the keytab).
 * So failures are classified explicitly, and only the non-transient kind
 * counts towards a repair.
 */

/**
 * Words of tools (adcli, kinit, sssd, getent, ldap) meaning "could not reach
 * or hear from the domain", not "the domain said no". Kept narrow: a refusal
 * ("Preauthentication failed", "Client not found in Kerberos database") is
 * not here, because that is what a broken trust looks like.
 */
const TRANSIENT_WORDS =
  /Cannot contact any KDC|KDC (is )?unavailable|KDC unreachable|Can't contact LDAP server|Couldn't connect to (LDAP server|host)|Couldn't find usable domain controller|No route to host|Connection refused|Connection timed out|timed out|Timeout|Server down|dc-unreachable|Resource temporarily unavailable/i;

/** Whether a check's failure reason describes an unreachable or silent DC rather than a real fault. */
export function isTransientReason(reason: string): boolean {
  return TRANSIENT_WORDS.test(reason);
}

/**
 * Whether an error thrown out of a check is transient: the agent's own
 * classification first (AgentError kind "transient", e.g. adcli testjoin's
 * dc-unreachable), then the words of the message for errors from elsewhere.
 */
export function isTransientError(err: unknown): boolean {
  if (err instanceof AgentError) return err.kind === 'transient' || (err.kind !== 'permanent' && isTransientReason(err.message));
  return err instanceof Error ? isTransientReason(err.message) : false;
}
