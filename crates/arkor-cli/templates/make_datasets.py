#!/usr/bin/env python3
"""Generate the chat fine-tuning datasets shipped with `arkor init --template ...`.

Writes, for each template T in (triage, translate, redaction):
    T/data/train.jsonl    (>= 320 rows)
    T/data/heldout.jsonl  (>= 40 rows, no user text shared with train)

Every row is an OpenAI-style chat record with the template's system prompt
embedded:
    {"messages": [{"role": "system", ...}, {"role": "user", ...},
                  {"role": "assistant", "content": "<compact JSON object>"}]}

All material below is hand-written; rows are assembled from it with fixed
random seeds, so re-running this script produces byte-identical files.
Only the Python 3 standard library is used.

    python3 make_datasets.py          # writes the six files next to this script
    python3 check_datasets.py         # validates them
"""

import json
import os
import random
import re
import unicodedata

HERE = os.path.dirname(os.path.abspath(__file__))

SYSTEM_TRIAGE = (
    "You are a support triage assistant for Tasklane, a project management SaaS. "
    "Classify the ticket and reply with only a JSON object with the keys "
    "\"category\" (one of account, billing, bug, feature_request, integration, security, performance, other), "
    "\"urgency\" (low, medium or high), \"summary\" (one short sentence) and "
    "\"nextAction\" (one imperative sentence for the support agent)."
)

SYSTEM_TRANSLATE = (
    "Translate the customer message into natural English and detect its language. "
    "Reply with only a JSON object with the keys \"translation\" (the English translation; "
    "for English input, the lightly cleaned-up original) and \"detectedLanguage\" "
    "(ISO 639-1 code: ja, es, fr, de, pt, it, zh, ko or en)."
)

SYSTEM_REDACTION = (
    "Redact personal data in the text by replacing each span with [REDACTED]: person names, "
    "email addresses, phone numbers, street addresses, credit card numbers, IP addresses, "
    "dates of birth and ID numbers; leave everything else unchanged. "
    "Reply with only a JSON object with the keys \"redactedText\", \"redactedCount\" "
    "(number of [REDACTED] spans) and \"tags\" (sorted list of the redacted types from NAME, "
    "EMAIL, PHONE, ADDRESS, CREDIT_CARD, IP_ADDRESS, DATE_OF_BIRTH, ID_NUMBER)."
)


def assistant_json(obj):
    return json.dumps(obj, ensure_ascii=False, separators=(", ", ": "))


def chat_row(system, user, answer):
    return {
        "messages": [
            {"role": "system", "content": system},
            {"role": "user", "content": user},
            {"role": "assistant", "content": assistant_json(answer)},
        ]
    }


def write_jsonl(path, rows):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", encoding="utf-8", newline="\n") as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")


SLOT_RE = re.compile(r"\{([A-Za-z_0-9]+)\}")


def slots_in(text):
    return SLOT_RE.findall(text)


# ---------------------------------------------------------------------------
# 1. TRIAGE
# ---------------------------------------------------------------------------
#
# Each scenario: u = urgency, t = ticket body variants (1-2 sentences, may use
# {slots}), s = summary, a = next action (both may only use slots that appear
# in every body variant), x = optional extra detail sentences that fit it.

TRIAGE_SCENARIOS = {
    "account": [
        dict(u="medium",
             t=["I reset my password but the new one isn't accepted on the login page.",
                "After resetting my password I still get \"invalid credentials\" every time I sign in.",
                "The reset link worked and I picked a new password, but now I can't log in with it.",
                "Password reset says it was successful, yet the login form keeps rejecting my new password."],
             s="User cannot log in after resetting their password.",
             a="Check the account for lockouts and send a fresh password reset link.",
             x=["I already tried the reset twice.", "Caps lock is definitely off."]),
        dict(u="low",
             t=["How do I change the email address on my account? I'm switching to a new work address.",
                "I'd like to update my login email from my personal address to my company one.",
                "Is it possible to change the email I sign in with without losing my projects?"],
             s="User wants to change the email address they log in with.",
             a="Send the steps for changing the login email under Profile settings."),
        dict(u="medium",
             t=["I got a new phone and lost my authenticator app, so I can't get past two-factor.",
                "My phone was stolen and it had my 2FA codes on it. Now I'm stuck at the verification screen.",
                "I can't log in because my two-factor codes were on my old phone, which I wiped.",
                "Lost access to my 2FA device and none of my backup codes work."],
             s="User lost their two-factor device and is locked out.",
             a="Verify the user's identity and reset their two-factor authentication."),
        dict(u="low",
             t=["Please delete my account and all the data linked to it. I don't use Tasklane anymore.",
                "I want to close my account permanently. How do I make sure my data is removed?",
                "Can you delete my personal account? I've moved to a different tool.",
                "I'd like my account and everything in it erased, please."],
             s="User requests permanent deletion of their account and data.",
             a="Confirm the user's identity and process the account deletion request."),
        dict(u="medium",
             t=["Our workspace owner left the company last month and nobody can manage the subscription. How do we transfer ownership?",
                "The person who created our workspace is gone and we need the owner role moved to me.",
                "Our only admin left and we can't change any workspace settings. Can you make me the owner?"],
             s="Workspace needs an ownership transfer after the owner left.",
             a="Verify the requester's authority and guide them through the ownership transfer."),
        dict(u="high",
             t=["None of our {n} users can log in; everyone sees \"workspace suspended\" {since}.",
                "Our whole team got locked out {since}. The login page says the account is suspended and we have deadlines today.",
                "All {n} people in our company are blocked at login with an account suspended message."],
             s="Whole team is locked out with a workspace suspended message.",
             a="Check the workspace suspension status and escalate to the accounts team immediately."),
        dict(u="medium",
             t=["I made my colleague an admin but she still can't open the billing page.",
                "A teammate with the Editor role can't see the Marketing project even though I added him.",
                "Permissions seem broken: new members can't open projects they were invited to."],
             s="Team member lacks access despite the assigned role or invitation.",
             a="Review the member's role and project permissions and reapply them if needed."),
        dict(u="low",
             t=["How can I change my display name? It still shows my old surname.",
                "My profile shows a typo in my name and I can't find where to edit it.",
                "Is there a way to change my username? I picked a silly one when I signed up."],
             s="User wants to change the name shown on their profile.",
             a="Explain how to edit the display name in Profile settings."),
        dict(u="high",
             t=["Someone on our team accidentally deleted the only admin account and now nobody can manage users.",
                "Our admin account was removed by mistake and we can't add the {n} new hires starting today."],
             s="Only admin account was deleted, leaving the workspace unmanageable.",
             a="Restore the admin account from the deletion log and escalate to the accounts team."),
    ],
    "billing": [
        dict(u="medium",
             t=["I was charged twice for the {plan} plan this month, {amount} each time.",
                "My card shows two {amount} charges from Tasklane for the same {plan} subscription.",
                "Double charge on our account: two payments of {amount} for the {plan} plan in {month}."],
             s="Customer was charged {amount} twice for the {plan} plan.",
             a="Confirm the duplicate charge and refund the extra {amount} payment."),
        dict(u="low",
             t=["Could you add our VAT number to invoice {invoice}? Our accountant needs it.",
                "Invoice {invoice} is missing our company's tax ID, can you reissue it?",
                "Our finance team needs invoice {invoice} to show our registered company name and VAT ID."],
             s="Customer needs company tax details added to invoice {invoice}.",
             a="Update the billing profile and reissue invoice {invoice}."),
        dict(u="high",
             t=["Our payment failed and now the whole workspace of {n} users is read-only. We can't work.",
                "The renewal charge was declined and Tasklane locked all {n} of our users out of editing.",
                "After a failed payment our {n} seats got switched to read-only in the middle of a launch."],
             s="Failed payment put the customer's {n}-user workspace into read-only mode.",
             a="Restore access temporarily and help the customer update their payment method."),
        dict(u="low",
             t=["If we downgrade from {plan} to Starter mid-cycle, do we get a prorated credit?",
                "Quick question: what happens to the remaining balance if I switch from {plan} to a cheaper plan?",
                "Do you refund the difference when someone moves off the {plan} plan before renewal?"],
             s="Customer asks about proration when downgrading from the {plan} plan.",
             a="Explain the proration policy for mid-cycle plan changes."),
        dict(u="medium",
             t=["I cancelled my subscription last week but still got billed {amount} today.",
                "We cancelled before the renewal date and were charged {amount} anyway.",
                "Why was I charged {amount} for a renewal? I cancelled back in {month}."],
             s="Customer was charged {amount} after cancelling.",
             a="Check the cancellation date and refund the {amount} charge if it is valid."),
        dict(u="low",
             t=["I can't find the invoice for {month} on the billing page.",
                "The {month} invoice isn't listed in our billing history.",
                "Where can I download the receipt for {month}? It's not under Billing."],
             s="Customer cannot find the {month} invoice.",
             a="Send the {month} invoice manually and check why it is missing."),
        dict(u="high",
             t=["We were just charged {big_amount} for seats we never added. This is way over our budget.",
                "Our card got hit with {big_amount} overnight; we normally pay a fraction of that.",
                "There's a {big_amount} charge from Tasklane that nobody on our team authorised."],
             s="Unexpected {big_amount} charge on the customer's card.",
             a="Review the seat changes behind the charge and escalate to billing for a refund."),
        dict(u="medium",
             t=["I'm trying to update our credit card but the form keeps saying \"card declined\" even though the card works elsewhere.",
                "Can't change the payment method, the billing page errors out when I save the new card.",
                "Our card expires this week and the billing page won't accept the replacement."],
             s="Customer cannot update the payment card on the billing page.",
             a="Check the payment processor logs and help update the card manually."),
    ],
    "bug": [
        dict(u="medium",
             t=["When I export a project to {fmt} the file downloads but it's empty.",
                "{fmt} export gives me a blank file, even for projects with hundreds of tasks.",
                "Exporting to {fmt} finishes, but the file only has headers and no rows."],
             s="{fmt} project export produces an empty file.",
             a="Reproduce the {fmt} export and file a bug with the project ID.",
             x=["I can reproduce it every time."]),
        dict(u="high",
             t=["Tasks we created yesterday have disappeared from our board. That's hours of work gone.",
                "A whole project vanished overnight, with all its tasks and comments.",
                "Half of the tasks on our sprint board are gone and nobody deleted them."],
             s="Tasks or projects disappeared without anyone deleting them.",
             a="Escalate to engineering immediately and check backups for the missing data."),
        dict(u="low",
             t=["The date picker starts the week on Sunday in {browser} even though I set Monday.",
                "Small thing: the sidebar icons overlap the project names in {browser}.",
                "In {browser} the tooltip on the due date field gets cut off."],
             s="Minor display glitch in {browser}.",
             a="Log a low-priority UI bug with the browser details.",
             x=["I can reproduce it every time."]),
        dict(u="medium",
             t=["The app crashes on my {device} every time I open a task with attachments.",
                "The mobile app keeps closing on my {device} as soon as I tap the Inbox tab.",
                "Since the latest update the app on my {device} crashes right after the splash screen."],
             s="Mobile app crashes on the user's {device}.",
             a="Collect the app version and crash logs and file a mobile bug.",
             x=["Reinstalling didn't help."]),
        dict(u="medium",
             t=["I stopped getting email notifications when someone mentions me.",
                "Notifications for task assignments aren't coming through anymore, neither email nor in-app.",
                "My due date reminders don't fire anymore."],
             s="User is no longer receiving notifications.",
             a="Check the user's notification settings and the email delivery logs.",
             x=["I checked my spam folder too."]),
        dict(u="high",
             t=["Our calls to {endpoint} have returned {err} errors {since}; our production sync is down.",
                "The API has been throwing {err} on {endpoint} {since} and our customers are affected.",
                "Every request to {endpoint} has failed with HTTP {err} {since}."],
             s="API endpoint {endpoint} is returning {err} errors.",
             a="Escalate to the on-call engineer and check the API error logs."),
        dict(u="low",
             t=["There's a typo on the settings page: the heading says \"Notifcations\".",
                "The Spanish translation of the \"Archive\" button is wrong.",
                "The tooltip on the export button says \"Import\"."],
             s="Minor text error in the interface.",
             a="Log a copy fix for the UI text team."),
        dict(u="medium",
             t=["Search doesn't find tasks I know exist, even when I type the exact title.",
                "Searching for a comment returns nothing, but it worked fine last week.",
                "Search results are missing everything created in the last few days."],
             s="Search is not returning existing tasks or comments.",
             a="Check the workspace search index and trigger a reindex if needed."),
        dict(u="high",
             t=["Nothing has saved for our team {since}; edits disappear as soon as we refresh.",
                "Changes we make to tasks are being lost {since}, for everyone in the workspace."],
             s="Edits are not being saved for the whole team.",
             a="Escalate to engineering as a data-loss incident."),
    ],
    "feature_request": [
        dict(u="low",
             t=["Any plans to add a dark mode? Staring at a white board all evening is rough.",
                "Would love a dark theme for the web app.",
                "Please add dark mode to the desktop app, it's the only tool I use without one."],
             s="User requests a dark mode.",
             a="Log the request in the feature tracker and share the public roadmap."),
        dict(u="low",
             t=["It would be great to export the timeline view as a PDF for client meetings.",
                "Can you add a way to print the Gantt chart?",
                "I'd love to share the timeline with clients who don't have Tasklane accounts."],
             s="User wants to export or share the timeline view.",
             a="Log the request and suggest the image export as a workaround."),
        dict(u="medium",
             t=["We really need bulk editing of due dates. Updating {n} tasks one by one is painful.",
                "Please let us select multiple tasks and change the assignee in one go; we have {n} to move.",
                "Bulk actions for tasks would save us hours, we're reassigning {n} tasks every sprint."],
             s="Customer requests bulk editing for tasks.",
             a="Log the request and share the CSV import workaround for bulk updates."),
        dict(u="low",
             t=["Could recurring tasks support \"every other weekday\"?",
                "Is it possible to make a task repeat on the last Friday of each month? If not, please consider it.",
                "I wish recurring tasks could skip public holidays."],
             s="User wants more flexible recurring task schedules.",
             a="Log the recurrence request in the feature tracker."),
        dict(u="medium",
             t=["Our team of {n} would upgrade to Business if you had an audit log export.",
                "We need audit logs we can export to our SIEM before we can roll this out to {n} people.",
                "An exportable audit trail is the one thing stopping our {n}-person team from upgrading."],
             s="Customer would upgrade if audit log export were available.",
             a="Log the request and loop in the account manager about the upgrade."),
        dict(u="low",
             t=["Keyboard shortcuts for moving tasks between columns would save me a lot of time.",
                "Can we get a shortcut to create a new task from anywhere?",
                "A shortcut to jump between projects would be really handy."],
             s="User requests new keyboard shortcuts.",
             a="Log the shortcut request and share the current shortcut list."),
        dict(u="low",
             t=["Custom fields don't show up in the mobile app. Please add them!",
                "It would be nice to edit custom fields from my phone, not just the web app."],
             s="User wants custom fields in the mobile app.",
             a="Log the request for the mobile team."),
        dict(u="medium",
             t=["We'd like two-way sync with Outlook calendar; our whole company of {n} lives in it.",
                "Please add an Outlook calendar integration, it's blocking adoption across our {n} staff."],
             s="Customer requests two-way Outlook calendar sync.",
             a="Log the integration request and note the company size."),
    ],
    "integration": [
        dict(u="medium",
             t=["The {chat} integration stopped posting task updates to our channel {since}.",
                "We don't get {chat} messages anymore when tasks are completed.",
                "Our {chat} notifications from Tasklane have been silent {since}, and nothing changed on our side."],
             s="{chat} integration stopped posting updates.",
             a="Check the {chat} connection status and ask the customer to reauthorise it.",
             x=["I already tried disconnecting and reconnecting."]),
        dict(u="high",
             t=["The {crm} sync is overwriting our deal data with old values. Our sales team is losing information.",
                "{crm} records are being replaced with stale data from Tasklane {since}.",
                "The two-way {crm} sync is creating thousands of duplicate contacts."],
             s="{crm} sync is corrupting or duplicating records.",
             a="Pause the {crm} sync for this workspace and escalate to the integrations team."),
        dict(u="medium",
             t=["When I try to connect {repo} I get \"authorization failed\".",
                "Linking our {repo} organisation keeps failing after the login screen.",
                "The {repo} integration says the token is invalid even though I just reconnected it."],
             s="{repo} connection fails with an authorisation error.",
             a="Check the app permissions and walk the customer through reconnecting {repo}."),
        dict(u="low",
             t=["Is there a Zapier trigger for when a task is marked complete?",
                "Can Zapier create tasks in a specific section of a project?",
                "Does your Zapier app support custom fields?"],
             s="Customer asks about Zapier trigger and action options.",
             a="Share the Zapier integration docs with the available triggers and actions."),
        dict(u="medium",
             t=["Our webhook endpoint isn't receiving events for new tasks anymore.",
                "Webhooks for task updates have stopped firing {since}.",
                "We get webhook events for projects but none for comments."],
             s="Webhook events are not being delivered.",
             a="Review the webhook delivery logs and confirm the endpoint is still registered."),
        dict(u="low",
             t=["Google Drive files attached to tasks don't show a preview, just a link.",
                "Can Google Drive attachments open inside Tasklane instead of a new tab?"],
             s="Customer asks about Google Drive attachment previews.",
             a="Explain how Drive previews work and check the file sharing permissions."),
        dict(u="high",
             t=["Since your update the {integration} integration fails for all {n} of our users and our workflows are blocked.",
                "The {integration} integration has been completely broken for our whole company {since}.",
                "{integration} sync is down for every team in our org and we have a release going out today."],
             s="{integration} integration is broken for the whole company.",
             a="Escalate to the integrations team and post an update on the status page."),
        dict(u="low",
             t=["How do I subscribe to my Tasklane due dates in Google Calendar?",
                "Is there an iCal feed for tasks assigned to me?"],
             s="User asks how to add due dates to their calendar.",
             a="Send the calendar feed setup instructions."),
    ],
    "security": [
        dict(u="high",
             t=["I got an alert about a login from {country}. I've never been there.",
                "Someone logged into my account from {country} last night and it wasn't me.",
                "There's an active session in my account from {country} that I don't recognise."],
             s="Unrecognised login to the user's account from {country}.",
             a="Revoke all sessions, force a password reset, and review the login history."),
        dict(u="high",
             t=["One of our developers accidentally pushed our API key to a public GitHub repo.",
                "Our API token was exposed in a public gist this morning.",
                "We pasted a live API key into a public forum post by mistake."],
             s="Customer's API key was exposed publicly.",
             a="Revoke the exposed key immediately and check the API logs for misuse."),
        dict(u="low",
             t=["Can you send your SOC 2 report for our vendor review?",
                "Our security team needs your latest penetration test summary before renewal.",
                "Do you encrypt data at rest, and where are your servers located?"],
             s="Customer requests security and compliance documentation.",
             a="Share the security documentation through the trust portal."),
        dict(u="high",
             t=["I think I found a stored XSS vulnerability in the task comment field.",
                "Reporting a possible vulnerability: I can see other workspaces' file names by changing an ID in the URL.",
                "Your password reset endpoint seems to leak whether an email is registered, and there's no rate limit."],
             s="User reports a security vulnerability in the application.",
             a="Forward the report to the security team and acknowledge it under the disclosure policy."),
        dict(u="high",
             t=["A former employee still seems to have access to our workspace even though we removed him.",
                "We removed a contractor last week but the activity log shows her editing tasks today."],
             s="Removed user still appears to access the workspace.",
             a="Revoke the user's sessions and tokens and review the audit log with the customer."),
        dict(u="high",
             t=["We got an email that looks like it's from Tasklane asking us to re-enter our passwords. Is this phishing?",
                "Several of our staff received a fake Tasklane invoice email with a login link."],
             s="Customer reports a phishing email impersonating Tasklane.",
             a="Confirm it is phishing, collect the email headers, and alert the security team."),
        dict(u="medium",
             t=["How can I require two-factor authentication for everyone in our workspace?",
                "We want to enforce 2FA for all {n} members after an internal audit."],
             s="Admin wants to enforce two-factor authentication for the workspace.",
             a="Explain how to enforce 2FA in the workspace security settings."),
        dict(u="low",
             t=["Can I see a list of devices currently logged in to my account?",
                "Is there a way to log out of all my other sessions?"],
             s="User wants to view or end their active sessions.",
             a="Point the user to the active sessions page in Security settings."),
    ],
    "performance": [
        dict(u="medium",
             t=["The dashboard takes about {secs} seconds to load every time.",
                "Opening the main dashboard is really slow, like {secs} seconds.",
                "Loading our project list takes {secs} seconds now, it used to be instant."],
             s="Pages take around {secs} seconds to load.",
             a="Gather a HAR file and workspace size details and check for slow queries."),
        dict(u="high",
             t=["The whole app has been timing out for everyone in our office {since}.",
                "Nothing loads, we just get spinning wheels. All {n} of us are stuck.",
                "Tasklane has been basically unusable for our {n}-person support team {since}; every page times out."],
             s="App is timing out for the whole team.",
             a="Check infrastructure alerts and escalate as a possible outage."),
        dict(u="low",
             t=["Large boards with over 500 cards feel a bit sluggish when scrolling.",
                "There's a slight lag when dragging cards on big projects. Not a huge deal."],
             s="Slight lag on very large boards.",
             a="Note the board size and share tips for archiving old cards."),
        dict(u="medium",
             t=["Search takes forever, sometimes {secs} seconds for a single query.",
                "Global search has gotten really slow in our workspace.",
                "Filtering tasks by assignee now takes several seconds every time."],
             s="Search and filtering are very slow in the workspace.",
             a="Collect example queries and workspace details for the search team."),
        dict(u="high",
             t=["API response times on {endpoint} jumped to over {secs} seconds and our jobs are timing out.",
                "We're seeing huge latency spikes on {endpoint}; our production integration keeps timing out."],
             s="Severe API latency on {endpoint} is causing timeouts.",
             a="Escalate to on-call engineering with the affected endpoint and timestamps."),
        dict(u="medium",
             t=["The mobile app on my {device} takes minutes to sync new tasks.",
                "Changes I make on my {device} only show up on the web after several minutes."],
             s="Mobile app syncs very slowly on the user's {device}.",
             a="Ask for the app version and network details and check the sync logs."),
        dict(u="low",
             t=["The weekly report takes a while to generate. Is that normal?",
                "Generating the time tracking report for the quarter is slow, around a minute."],
             s="Report generation is slower than expected.",
             a="Explain report generation times and suggest narrowing the date range."),
    ],
    "other": [
        dict(u="low",
             t=["We're an agency and would like to become a Tasklane reseller. Who should we talk to?",
                "Do you have a partner program for consultants who set up Tasklane for clients?"],
             s="Inquiry about the reseller or partner program.",
             a="Forward the inquiry to the partnerships team."),
        dict(u="low",
             t=["Just wanted to say the new board view is fantastic. Great job!",
                "No issue here, just a thank you. Tasklane has made our weekly planning so much easier.",
                "Our team loves the latest release, especially the new templates."],
             s="Customer sends positive feedback.",
             a="Thank the customer and share the feedback with the product team."),
        dict(u="low",
             t=["Where can I find your API documentation?",
                "Is there a link to your status page? I couldn't find it.",
                "Do you have video tutorials for new team members?"],
             s="Customer is looking for documentation or resources.",
             a="Send links to the relevant documentation and resources."),
        dict(u="medium",
             t=["Our legal team needs a signed DPA before we roll out Tasklane to {n} users.",
                "Can you send a data processing agreement for us to sign? Procurement is waiting on it."],
             s="Customer needs a signed data processing agreement.",
             a="Send the standard DPA and involve legal if changes are requested."),
        dict(u="medium",
             t=["Can we schedule a training session for our {n} new hires next week?",
                "We're onboarding a new department and would like a live walkthrough of Tasklane."],
             s="Customer wants a live training session.",
             a="Offer training slots with the customer success team."),
        dict(u="low",
             t=["Is Tasklane available in German? Some of my colleagues would prefer it.",
                "Which languages does the interface support?"],
             s="Customer asks about interface language options.",
             a="List the supported languages and explain how to switch them in Profile settings."),
        dict(u="medium",
             t=["Our account manager hasn't replied in two weeks and our renewal is next month. Who else can help?",
                "I've emailed our account rep three times about the renewal with no answer."],
             s="Customer cannot reach their account manager before renewal.",
             a="Reassign the account and have a team lead contact the customer."),
        dict(u="high",
             t=["Our contract ends tomorrow and we still haven't received the renewal quote. We can't afford to lose access.",
                "Procurement needs the renewal paperwork today or our {n} users lose access at midnight."],
             s="Customer needs renewal paperwork before the contract expires.",
             a="Escalate to the account manager to send the renewal quote today."),
    ],
}

TRIAGE_SLOTS = {
    "plan": ["Starter", "Pro", "Team", "Business"],
    "month": ["January", "February", "March", "April", "May", "June", "July",
              "August", "September", "October", "November", "December"],
    "amount": ["$18", "$29", "$49", "$75", "$99", "$129", "$240", "$612"],
    "big_amount": ["$2,350", "$3,075", "$4,800", "$6,400", "$9,120"],
    "invoice": ["INV-20931", "INV-21407", "INV-18862", "INV-30015", "INV-27744",
                "INV-19503", "INV-33120", "INV-24689"],
    "n": ["8", "12", "25", "40", "60", "85", "150", "300"],
    "browser": ["Chrome", "Firefox", "Safari", "Edge"],
    "device": ["iPhone 13", "iPhone 15", "Pixel 8", "Galaxy S23", "iPad Air", "OnePlus 11"],
    "integration": ["Slack", "Salesforce", "Jira", "GitHub", "HubSpot", "Google Drive", "Zapier", "Microsoft Teams"],
    "chat": ["Slack", "Microsoft Teams", "Google Chat"],
    "crm": ["Salesforce", "HubSpot", "Pipedrive"],
    "repo": ["GitHub", "GitLab", "Bitbucket"],
    "fmt": ["CSV", "Excel", "PDF"],
    "err": ["500", "502", "503", "504"],
    "endpoint": ["/v2/tasks", "/v2/projects", "/v2/comments", "/v2/users", "/v2/attachments"],
    "since": ["since this morning", "since about 9am", "for the last two hours",
              "since yesterday afternoon", "since your last release", "since around noon"],
    "secs": ["15", "20", "30", "45", "60"],
    "country": ["Brazil", "Singapore", "Poland", "Canada", "Indonesia", "South Africa", "Mexico"],
    "ws": ["Northwind Ops", "Bluebird Studio", "Acme Marketing", "Harbor Analytics",
           "Greenleaf Dental", "Pine & Co", "Orbit Labs", "Maple Street Bakery", "Kestrel Legal"],
    "sig": ["Dan", "Priya", "Marco", "Aisha", "Tom", "Mei", "Lukas", "Sofia", "Kwame", "Hannah",
            "Raj", "Elena", "Ben", "Yuki", "Carlos", "Fatima", "Olivia", "Noah", "Ines", "Grace"],
}

TRIAGE_DETAILS = {
    "account": ["Our workspace is {ws}.", "Happy to verify my identity if needed.",
                "I'm writing from the email on the account.", "We're on the {plan} plan."],
    "billing": ["Our workspace is {ws}.", "We're on the {plan} plan.",
                "Our finance team is asking me about this.", "We pay monthly by card."],
    "bug": ["Screenshot attached.", "Our workspace is {ws}.", "Happy to jump on a call if that helps.",
            "It started after the latest update."],
    "feature_request": ["Happy to share more about our use case.", "I'm sure other teams would find this useful.",
                        "Otherwise we love the product.", "We've been customers for a few years now."],
    "integration": ["We're on the {plan} plan.", "Our workspace is {ws}.", "Happy to send any IDs or logs you need."],
    "security": ["Please treat this as confidential.", "Our workspace is {ws}.", "I'm the admin for our account."],
    "performance": ["Our workspace is {ws}.", "Other tools we use are working fine.", "Let me know what logs you need."],
    "other": ["Our workspace is {ws}.", "I'm the admin on our account.", "We're on the {plan} plan."],
}

TRIAGE_OPENINGS = ["Hi,", "Hello,", "Hi team,", "Hey there,", "Good morning,", "Hi support,",
                   "Hello Tasklane team,", "Hi folks,", "Hey,", "Good afternoon,", "Hi all,"]
TRIAGE_OPENINGS_HIGH = ["URGENT:", "Urgent -", "Please help ASAP.", "This is urgent."]
TRIAGE_OPENINGS_LOW = ["Quick question.", "No rush on this one."]
TRIAGE_CLOSINGS = ["Thanks!", "Thanks in advance.", "Thank you.", "Any help appreciated.",
                   "Cheers.", "Let me know, thanks.", "Appreciate it."]
TRIAGE_CLOSINGS_HIGH = ["Please escalate this.", "We need this fixed today.",
                        "Please call me back as soon as possible.", "This is blocking our whole team."]
TRIAGE_CLOSINGS_LOW = ["No rush.", "Whenever you get a chance.", "Not urgent at all."]

TRIAGE_CATEGORIES = ["account", "billing", "bug", "feature_request", "integration",
                     "security", "performance", "other"]
TRIAGE_PER_CATEGORY = 51      # 45 train + 6 heldout
TRIAGE_HELDOUT_PER_CATEGORY = 6
HIGH_WEIGHT = 1.5             # over-sample high-urgency scenarios to balance urgencies


def fill(template, values, rng):
    def repl(m):
        key = m.group(1)
        if key not in values:
            values[key] = rng.choice(TRIAGE_SLOTS[key])
        return values[key]
    return SLOT_RE.sub(repl, template)


def add_typos(text, rng):
    words = text.split(" ")
    idxs = [i for i, w in enumerate(words) if w.isalpha() and len(w) >= 5]
    if not idxs:
        return text
    for i in rng.sample(idxs, min(len(idxs), rng.choice([1, 1, 2]))):
        w = words[i]
        j = rng.randrange(1, len(w) - 2)
        words[i] = w[:j] + w[j + 1] + w[j] + w[j + 2:]
    return " ".join(words)


def compose_ticket(rng, sc, cat):
    urg = sc["u"]
    openings = list(TRIAGE_OPENINGS)
    closings = list(TRIAGE_CLOSINGS)
    if urg == "high":
        openings += TRIAGE_OPENINGS_HIGH * 2
        closings += TRIAGE_CLOSINGS_HIGH * 2
    elif urg == "low":
        openings += TRIAGE_OPENINGS_LOW
        closings += TRIAGE_CLOSINGS_LOW
    opening = rng.choice(openings) if rng.random() < 0.6 else ""
    body = rng.choice(sc["t"])
    details = TRIAGE_DETAILS[cat] + sc.get("x", [])
    detail = rng.choice(details) if rng.random() < 0.45 else ""
    closing = rng.choice(closings) if rng.random() < 0.6 else ""
    sig = "{sig}" if rng.random() < 0.3 else ""
    email_style = opening.endswith(",") and rng.random() < 0.5
    middle = " ".join(p for p in [body, detail] if p)
    if email_style:
        text = opening + "\n\n" + middle
        if closing or sig:
            text += "\n\n" + "\n".join(p for p in [closing, sig] if p)
    else:
        if opening.endswith(","):
            opening = opening[:-1] + rng.choice(["!", ".", " -"])
        parts = [opening, middle, closing]
        text = " ".join(p for p in parts if p)
        if sig:
            text += " - " + sig
    return text, body


def check_triage_material():
    for cat, scs in TRIAGE_SCENARIOS.items():
        for sc in scs:
            for field in ("s", "a"):
                needed = set(slots_in(sc[field]))
                for variant in sc["t"]:
                    missing = needed - set(slots_in(variant))
                    assert not missing, (cat, sc[field], variant, missing)
            assert len(sc["s"].split()) <= 15, sc["s"]
            assert sc["u"] in ("low", "medium", "high")


def build_triage():
    check_triage_material()
    rng = random.Random(20240611)
    seen = set()
    train, heldout = [], []
    for cat in TRIAGE_CATEGORIES:
        scs = TRIAGE_SCENARIOS[cat]
        weights = [HIGH_WEIGHT if sc["u"] == "high" else 1.0 for sc in scs]
        total = sum(weights)
        quotas = [int(TRIAGE_PER_CATEGORY * w / total) for w in weights]
        i = 0
        while sum(quotas) < TRIAGE_PER_CATEGORY:   # hand out the remainder round-robin
            quotas[i % len(quotas)] += 1
            i += 1
        cat_rows = []
        for sc, quota in zip(scs, quotas):
            made = 0
            attempts = 0
            while made < quota:
                attempts += 1
                assert attempts < 1000, ("cannot make enough unique tickets", cat, sc["s"])
                values = {}
                text, body = compose_ticket(rng, sc, cat)
                text = fill(text, values, rng)
                r = rng.random()
                if r < 0.15:
                    text = add_typos(text, rng)
                elif r < 0.22:
                    text = text.lower()
                    if rng.random() < 0.5:
                        text = text.replace("'", "")
                if text in seen:
                    continue
                seen.add(text)
                answer = {
                    "category": cat,
                    "urgency": sc["u"],
                    "summary": fill(sc["s"], values, rng),
                    "nextAction": fill(sc["a"], values, rng),
                }
                cat_rows.append(chat_row(SYSTEM_TRIAGE, text, answer))
                made += 1
        rng.shuffle(cat_rows)
        heldout += cat_rows[:TRIAGE_HELDOUT_PER_CATEGORY]
        train += cat_rows[TRIAGE_HELDOUT_PER_CATEGORY:]
    rng.shuffle(train)
    rng.shuffle(heldout)
    return train, heldout


# ---------------------------------------------------------------------------
# 2. TRANSLATE
# ---------------------------------------------------------------------------
#
# Hand-written (source, English) pairs, 46 per language. Six per language are
# reserved for heldout, so heldout sentences are never seen in training.
# Messages are a core sentence, optionally wrapped with a greeting and/or a
# short sign-off in the same language.

TRANSLATE_PAIRS = {
    "ja": [
        ("パスワードを忘れてしまいました。リセットの方法を教えてください。", "I forgot my password. Please tell me how to reset it."),
        ("注文した商品がまだ届いていません。", "The item I ordered still hasn't arrived."),
        ("返金はいつ頃になりますか？", "When can I expect the refund?"),
        ("アプリを開くとすぐに落ちてしまいます。", "The app crashes as soon as I open it."),
        ("先週届いた商品が壊れていました。交換をお願いできますか？", "The item that arrived last week was broken. Could I get a replacement?"),
        ("いつも丁寧に対応していただき、ありがとうございます。", "Thank you for always helping me so courteously."),
        ("登録しているメールアドレスを変更したいです。", "I would like to change my registered email address."),
        ("請求書の宛名を会社名に変更してもらえますか？", "Could you change the name on the invoice to our company name?"),
        ("ログインしようとすると「エラーが発生しました」と表示されます。", "When I try to log in, it says \"An error occurred.\""),
        ("明日の打ち合わせを午後3時に変更できますか？", "Could we move tomorrow's meeting to 3 p.m.?"),
        ("解約の手続き方法を教えてください。", "Please tell me how to cancel my subscription."),
        ("同じ注文で二重に請求されています。", "I have been charged twice for the same order."),
        ("配送先の住所を変更したいのですが、まだ間に合いますか？", "I'd like to change the shipping address. Is there still time?"),
        ("新しいバージョンはとても使いやすくなりました。", "The new version is much easier to use."),
        ("二段階認証のコードが届きません。", "I'm not receiving the two-factor authentication code."),
        ("データをCSV形式でエクスポートすることはできますか？", "Is it possible to export the data in CSV format?"),
        ("通知が多すぎるので、減らす方法を知りたいです。", "I get too many notifications, so I'd like to know how to reduce them."),
        ("プランをプロにアップグレードしたいです。", "I would like to upgrade my plan to Pro."),
        ("サポートからの返信が三日も来ていません。", "I haven't had a reply from support for three days."),
        ("注文番号を入力しても配送状況が表示されません。", "Even when I enter my order number, the shipping status doesn't appear."),
        ("画面の表示が英語になってしまったので、日本語に戻したいです。", "The display has switched to English, so I'd like to change it back to Japanese."),
        ("領収書を再発行していただけますか？", "Could you reissue the receipt?"),
        ("届いた商品のサイズが注文したものと違います。", "The size of the item I received is different from what I ordered."),
        ("割引コードが使えませんでした。", "The discount code didn't work."),
        ("来週の月曜日にデモをお願いできますか？", "Could we schedule a demo for next Monday?"),
        ("アカウントを削除したいです。データもすべて消してください。", "I want to delete my account. Please delete all my data as well."),
        ("ファイルをアップロードすると途中で止まってしまいます。", "When I upload a file, it stops partway through."),
        ("先日は迅速に対応していただき、本当に助かりました。", "Thank you for your quick response the other day; it was a real help."),
        ("支払い方法をクレジットカードから銀行振込に変更できますか？", "Can I change my payment method from credit card to bank transfer?"),
        ("チームメンバーを招待するにはどうすればいいですか？", "How do I invite team members?"),
        ("返品の送料はどちらが負担しますか？", "Who pays the shipping cost for returns?"),
        ("昨日からサイトの動作がとても遅いです。", "The site has been very slow since yesterday."),
        ("パスワードを変更したのに、古いパスワードでログインできてしまいます。", "I changed my password, but I can still log in with the old one."),
        ("商品の発送予定日を教えてください。", "Please let me know when the item is expected to ship."),
        ("無料トライアルの期間を延長することは可能ですか？", "Is it possible to extend the free trial period?"),
        ("請求金額が先月より高くなっている理由を知りたいです。", "I'd like to know why the amount billed is higher than last month."),
        ("予約をキャンセルしたいのですが、キャンセル料はかかりますか？", "I'd like to cancel my reservation. Is there a cancellation fee?"),
        ("検索機能が正しく動いていないようです。", "The search function doesn't seem to be working properly."),
        ("担当者の方と電話で話すことはできますか？", "Would it be possible to speak with a representative by phone?"),
        ("素晴らしいサービスです。友人にも勧めました。", "It's a wonderful service. I've recommended it to my friends too."),
        ("会社の住所が変わったので、登録情報を更新してください。", "Our company address has changed, so please update our registered information."),
        ("毎月の自動更新を停止したいです。", "I'd like to stop the monthly auto-renewal."),
        ("複数の注文をまとめて発送してもらえますか？", "Could you ship my orders together in one package?"),
        ("スマートフォンのアプリで通知が届かなくなりました。", "I've stopped receiving notifications in the smartphone app."),
        ("金曜日までに見積書を送っていただけますか？", "Could you send us a quote by Friday?"),
        ("ユーザー名を変更することはできますか？", "Is it possible to change my username?"),
    ],
    "es": [
        ("Olvidé mi contraseña y no me llega el correo para restablecerla.", "I forgot my password and I'm not getting the email to reset it."),
        ("Mi pedido lleva dos semanas de retraso. ¿Pueden decirme dónde está?", "My order is two weeks late. Can you tell me where it is?"),
        ("Quiero solicitar un reembolso por el producto defectuoso.", "I want to request a refund for the defective product."),
        ("La aplicación se cierra sola cada vez que intento pagar.", "The app closes by itself every time I try to pay."),
        ("Me cobraron dos veces la suscripción de este mes.", "I was charged twice for this month's subscription."),
        ("Muchas gracias por la ayuda, el problema ya está resuelto.", "Thank you very much for the help, the problem is now solved."),
        ("¿Podemos cambiar la reunión del jueves al viernes por la mañana?", "Can we move Thursday's meeting to Friday morning?"),
        ("Necesito cambiar la dirección de envío de mi último pedido.", "I need to change the shipping address for my latest order."),
        ("El paquete llegó abierto y faltan dos artículos.", "The package arrived open and two items are missing."),
        ("¿Cómo puedo descargar mis facturas anteriores?", "How can I download my previous invoices?"),
        ("No puedo iniciar sesión desde que actualicé la aplicación.", "I haven't been able to log in since I updated the app."),
        ("Quisiera cancelar mi suscripción antes de la próxima renovación.", "I would like to cancel my subscription before the next renewal."),
        ("El código de descuento dice que no es válido.", "The discount code says it isn't valid."),
        ("Su equipo de soporte es excelente, ¡sigan así!", "Your support team is excellent, keep it up!"),
        ("¿Es posible cambiar el correo electrónico asociado a mi cuenta?", "Is it possible to change the email address associated with my account?"),
        ("La página tarda muchísimo en cargar desde ayer.", "The page has been taking a very long time to load since yesterday."),
        ("Recibí una talla equivocada. ¿Cómo hago el cambio?", "I received the wrong size. How do I exchange it?"),
        ("¿Tienen algún plan con descuento para organizaciones sin fines de lucro?", "Do you have a discounted plan for non-profit organizations?"),
        ("No me llegan las notificaciones al móvil.", "I'm not getting notifications on my phone."),
        ("Quiero eliminar mi cuenta y todos mis datos personales.", "I want to delete my account and all my personal data."),
        ("El botón de guardar no funciona en Firefox.", "The save button doesn't work in Firefox."),
        ("¿Cuándo recibiré el reembolso? Ya pasaron diez días.", "When will I receive the refund? Ten days have already passed."),
        ("Me gustaría agendar una llamada con un asesor la próxima semana.", "I would like to schedule a call with an advisor next week."),
        ("¿Pueden enviarme la factura con los datos de mi empresa?", "Can you send me the invoice with my company's details?"),
        ("El producto es muy bueno, pero el envío fue demasiado lento.", "The product is very good, but the shipping was far too slow."),
        ("No recibo el código de verificación por SMS.", "I'm not receiving the verification code by SMS."),
        ("Quiero pasar del plan básico al plan profesional.", "I want to switch from the basic plan to the professional plan."),
        ("Al exportar el informe, el archivo sale vacío.", "When I export the report, the file comes out empty."),
        ("¿Hacen envíos a Canarias?", "Do you ship to the Canary Islands?"),
        ("Llevo una hora esperando en el chat y nadie me responde.", "I've been waiting in the chat for an hour and nobody is answering."),
        ("Por favor, actualicen mi número de teléfono en el perfil.", "Please update my phone number in my profile."),
        ("El cargo en mi tarjeta no coincide con el precio que aparecía en la web.", "The charge on my card doesn't match the price shown on the website."),
        ("¿Puedo devolver un artículo comprado en oferta?", "Can I return an item I bought on sale?"),
        ("Necesito añadir a tres compañeros a nuestra cuenta de equipo.", "I need to add three colleagues to our team account."),
        ("Me encanta la nueva función de calendario.", "I love the new calendar feature."),
        ("Mi cuenta aparece bloqueada y no sé por qué.", "My account shows as locked and I don't know why."),
        ("¿Podrían confirmar si recibieron mi pago?", "Could you confirm whether you received my payment?"),
        ("El seguimiento del pedido no se actualiza desde el lunes.", "The order tracking hasn't updated since Monday."),
        ("Quisiera cambiar la fecha de entrega al sábado.", "I would like to change the delivery date to Saturday."),
        ("Cuando subo una foto de perfil aparece un error.", "When I upload a profile photo, an error appears."),
        ("¿Cuánto tiempo tarda en procesarse una devolución?", "How long does it take for a return to be processed?"),
        ("Me equivoqué de plan al registrarme. ¿Lo pueden corregir?", "I chose the wrong plan when I signed up. Can you fix it?"),
        ("Gracias por responder tan rápido un domingo.", "Thanks for replying so quickly on a Sunday."),
        ("La contraseña nueva no cumple los requisitos, pero no dice cuáles son.", "The new password doesn't meet the requirements, but it doesn't say what they are."),
        ("¿Hay alguna forma de pausar la suscripción durante el verano?", "Is there any way to pause the subscription during the summer?"),
        ("Quiero cambiar el idioma de la cuenta a español.", "I want to change the account language to Spanish."),
    ],
    "fr": [
        ("J'ai oublié mon mot de passe et le lien de réinitialisation a expiré.", "I forgot my password and the reset link has expired."),
        ("Ma commande n'est toujours pas arrivée alors qu'elle était prévue mardi.", "My order still hasn't arrived, even though it was due on Tuesday."),
        ("Je souhaite être remboursé, l'article ne correspond pas à la description.", "I would like a refund; the item doesn't match the description."),
        ("L'application plante dès que j'ouvre mes paramètres.", "The app crashes as soon as I open my settings."),
        ("J'ai été débité deux fois pour le même abonnement.", "I was charged twice for the same subscription."),
        ("Merci beaucoup pour votre réactivité, tout fonctionne maintenant.", "Thank you very much for your quick response; everything works now."),
        ("Serait-il possible de décaler notre rendez-vous à lundi prochain ?", "Would it be possible to move our appointment to next Monday?"),
        ("Je voudrais modifier l'adresse de livraison de ma commande.", "I would like to change the delivery address for my order."),
        ("Le colis est arrivé endommagé.", "The parcel arrived damaged."),
        ("Où puis-je trouver mes factures des mois précédents ?", "Where can I find my invoices from previous months?"),
        ("Je n'arrive plus à me connecter depuis ce matin.", "I haven't been able to log in since this morning."),
        ("Comment résilier mon abonnement ?", "How do I cancel my subscription?"),
        ("Le code promo ne fonctionne pas au moment du paiement.", "The promo code doesn't work at checkout."),
        ("Votre service client est vraiment au top, bravo !", "Your customer service is really excellent, well done!"),
        ("Je souhaite changer l'adresse e-mail liée à mon compte.", "I would like to change the email address linked to my account."),
        ("Le site est extrêmement lent depuis la dernière mise à jour.", "The site has been extremely slow since the last update."),
        ("J'ai reçu la mauvaise couleur. Puis-je faire un échange ?", "I received the wrong color. Can I exchange it?"),
        ("Proposez-vous des tarifs pour les associations ?", "Do you offer special rates for non-profit organizations?"),
        ("Je ne reçois plus les notifications par e-mail.", "I no longer receive email notifications."),
        ("Merci de supprimer mon compte ainsi que toutes mes données.", "Please delete my account along with all my data."),
        ("Le bouton « Enregistrer » ne répond pas sur Safari.", "The \"Save\" button doesn't respond on Safari."),
        ("Cela fait deux semaines que j'attends mon remboursement.", "I've been waiting for my refund for two weeks."),
        ("Pouvons-nous organiser un appel jeudi après-midi ?", "Can we set up a call on Thursday afternoon?"),
        ("Pourriez-vous ajouter notre numéro de TVA sur la facture ?", "Could you add our VAT number to the invoice?"),
        ("Le produit est de bonne qualité, mais la livraison a pris trop de temps.", "The product is good quality, but the delivery took too long."),
        ("Je ne reçois pas le code de vérification par SMS.", "I'm not receiving the verification code by text message."),
        ("J'aimerais passer à l'offre Premium.", "I'd like to upgrade to the Premium plan."),
        ("L'export en PDF affiche des caractères illisibles.", "The PDF export shows unreadable characters."),
        ("Livrez-vous en Belgique et en Suisse ?", "Do you deliver to Belgium and Switzerland?"),
        ("J'attends une réponse du support depuis cinq jours.", "I've been waiting for a reply from support for five days."),
        ("Veuillez mettre à jour mon numéro de téléphone.", "Please update my phone number."),
        ("Le montant prélevé ne correspond pas à celui de ma facture.", "The amount debited doesn't match the amount on my invoice."),
        ("Est-il possible de retourner un article soldé ?", "Is it possible to return a sale item?"),
        ("Comment ajouter un collaborateur à mon espace de travail ?", "How do I add a collaborator to my workspace?"),
        ("J'adore la nouvelle interface, elle est beaucoup plus claire.", "I love the new interface; it's much clearer."),
        ("Mon compte a été suspendu sans explication.", "My account was suspended without explanation."),
        ("Pouvez-vous me confirmer la bonne réception de mon paiement ?", "Can you confirm that you received my payment?"),
        ("Le suivi de mon colis n'a pas bougé depuis vendredi.", "The tracking for my parcel hasn't changed since Friday."),
        ("Je serai absent samedi, pouvez-vous livrer lundi à la place ?", "I'll be away on Saturday; can you deliver on Monday instead?"),
        ("Impossible d'importer mon fichier Excel, un message d'erreur s'affiche.", "I can't import my Excel file; an error message appears."),
        ("Quels sont les délais de remboursement après un retour ?", "How long does a refund take after a return?"),
        ("Je me suis trompé d'abonnement lors de l'inscription.", "I picked the wrong subscription when I signed up."),
        ("Un grand merci à Julie pour son aide précieuse.", "Many thanks to Julie for her invaluable help."),
        ("Le lien de confirmation dans l'e-mail ne fonctionne pas.", "The confirmation link in the email doesn't work."),
        ("Peut-on mettre l'abonnement en pause pendant deux mois ?", "Can the subscription be paused for two months?"),
        ("Je voudrais changer la langue de l'interface en français.", "I'd like to change the interface language to French."),
    ],
    "de": [
        ("Ich habe mein Passwort vergessen und bekomme keine E-Mail zum Zurücksetzen.", "I forgot my password and I'm not getting an email to reset it."),
        ("Meine Bestellung ist seit zehn Tagen unterwegs. Wo bleibt sie?", "My order has been in transit for ten days. Where is it?"),
        ("Ich möchte mein Geld zurück, der Artikel war beschädigt.", "I want my money back; the item was damaged."),
        ("Die App stürzt jedes Mal ab, wenn ich ein Foto hochlade.", "The app crashes every time I upload a photo."),
        ("Mir wurde das Abo diesen Monat doppelt abgebucht.", "I was charged twice for the subscription this month."),
        ("Vielen Dank für die schnelle Hilfe!", "Thank you very much for the quick help!"),
        ("Können wir den Termin am Mittwoch auf 14 Uhr verschieben?", "Can we move Wednesday's appointment to 2 p.m.?"),
        ("Ich muss die Lieferadresse für meine Bestellung ändern.", "I need to change the delivery address for my order."),
        ("Im Paket fehlte ein Teil.", "One part was missing from the package."),
        ("Wie kann ich meine alten Rechnungen herunterladen?", "How can I download my old invoices?"),
        ("Seit dem letzten Update kann ich mich nicht mehr anmelden.", "Since the last update, I can no longer log in."),
        ("Ich möchte mein Abonnement zum Monatsende kündigen.", "I would like to cancel my subscription at the end of the month."),
        ("Der Gutscheincode wird nicht akzeptiert.", "The voucher code isn't being accepted."),
        ("Ihr Kundenservice ist wirklich hervorragend.", "Your customer service is truly excellent."),
        ("Wie ändere ich die E-Mail-Adresse in meinem Konto?", "How do I change the email address on my account?"),
        ("Die Webseite lädt seit heute Morgen extrem langsam.", "The website has been loading extremely slowly since this morning."),
        ("Ich habe die falsche Größe bekommen und möchte sie umtauschen.", "I received the wrong size and would like to exchange it."),
        ("Gibt es einen Rabatt für Studierende?", "Is there a discount for students?"),
        ("Ich erhalte keine Push-Benachrichtigungen mehr auf meinem Handy.", "I no longer get push notifications on my phone."),
        ("Bitte löschen Sie mein Konto und alle gespeicherten Daten.", "Please delete my account and all stored data."),
        ("Beim Speichern erscheint immer die Fehlermeldung „Unbekannter Fehler“.", "Whenever I save, the error message \"Unknown error\" appears."),
        ("Die Rückerstattung ist nach drei Wochen immer noch nicht da.", "The refund still hasn't arrived after three weeks."),
        ("Hätten Sie nächste Woche Zeit für ein kurzes Telefonat?", "Would you have time for a short phone call next week?"),
        ("Könnten Sie die Rechnung bitte auf unsere Firma ausstellen?", "Could you please issue the invoice in our company's name?"),
        ("Das Produkt ist super, nur die Lieferung hat ewig gedauert.", "The product is great; only the delivery took forever."),
        ("Der Bestätigungscode per SMS kommt nicht an.", "The confirmation code sent by SMS doesn't arrive."),
        ("Ich würde gern auf den Business-Tarif upgraden.", "I'd like to upgrade to the Business plan."),
        ("Im CSV-Export werden die Umlaute falsch dargestellt.", "Umlauts are displayed incorrectly in the CSV export."),
        ("Liefern Sie auch nach Österreich?", "Do you also deliver to Austria?"),
        ("Ich warte seit einer Woche auf eine Antwort vom Support.", "I've been waiting a week for a reply from support."),
        ("Bitte aktualisieren Sie meine Telefonnummer.", "Please update my phone number."),
        ("Der abgebuchte Betrag stimmt nicht mit dem Preis im Shop überein.", "The amount debited doesn't match the price in the shop."),
        ("Kann ich reduzierte Ware zurückgeben?", "Can I return discounted items?"),
        ("Wie lade ich Kollegen in unseren Team-Account ein?", "How do I invite colleagues to our team account?"),
        ("Die neue Kalenderansicht gefällt mir sehr gut.", "I really like the new calendar view."),
        ("Mein Konto wurde ohne Vorwarnung gesperrt.", "My account was blocked without warning."),
        ("Können Sie bestätigen, dass meine Zahlung eingegangen ist?", "Can you confirm that my payment has been received?"),
        ("Die Sendungsverfolgung zeigt seit Montag keinen neuen Status.", "The shipment tracking hasn't shown a new status since Monday."),
        ("Könnten Sie das Paket erst nächste Woche liefern? Ich bin im Urlaub.", "Could you wait until next week to deliver the package? I'm on vacation."),
        ("Der Import meiner Kontakte bricht bei 50 % ab.", "Importing my contacts stops at 50%."),
        ("Wie lange dauert die Bearbeitung einer Rücksendung?", "How long does it take to process a return?"),
        ("Ich habe bei der Anmeldung den falschen Tarif gewählt.", "I chose the wrong plan when I signed up."),
        ("Danke, dass Sie sich so viel Zeit für mich genommen haben.", "Thank you for taking so much time for me."),
        ("Der Link in der Bestätigungs-E-Mail ist abgelaufen.", "The link in the confirmation email has expired."),
        ("Kann ich mein Abo für zwei Monate pausieren?", "Can I pause my subscription for two months?"),
        ("Die Zwei-Faktor-Authentifizierung funktioniert nach dem Handywechsel nicht mehr.", "Two-factor authentication no longer works since I switched phones."),
    ],
    "pt": [
        ("Esqueci minha senha e não consigo redefini-la.", "I forgot my password and can't reset it."),
        ("Meu pedido ainda não chegou e o prazo já passou.", "My order still hasn't arrived and the delivery deadline has already passed."),
        ("Gostaria de pedir o reembolso de uma compra duplicada.", "I would like to request a refund for a duplicate purchase."),
        ("O aplicativo fecha sozinho quando tento abrir o carrinho.", "The app closes by itself when I try to open the cart."),
        ("Fui cobrado duas vezes no cartão de crédito.", "I was charged twice on my credit card."),
        ("Obrigado pelo atendimento, vocês foram muito atenciosos.", "Thank you for the service; you were very attentive."),
        ("Podemos remarcar a reunião para quinta-feira às 10h?", "Can we reschedule the meeting for Thursday at 10 a.m.?"),
        ("Preciso alterar o endereço de entrega do meu pedido.", "I need to change the delivery address for my order."),
        ("A caixa chegou amassada e o produto está quebrado.", "The box arrived dented and the product is broken."),
        ("Como faço para emitir a segunda via da fatura?", "How do I get a duplicate copy of the bill?"),
        ("Não consigo entrar na minha conta pelo celular.", "I can't log into my account from my phone."),
        ("Quero cancelar a assinatura e não ser mais cobrado.", "I want to cancel the subscription and not be charged anymore."),
        ("O cupom de desconto não está sendo aplicado.", "The discount coupon isn't being applied."),
        ("Adorei o novo recurso de relatórios!", "I loved the new reports feature!"),
        ("Como altero o e-mail cadastrado na minha conta?", "How do I change the email registered on my account?"),
        ("O sistema está muito lento hoje, quase não dá para usar.", "The system is very slow today; it's almost unusable."),
        ("Recebi um produto diferente do que comprei.", "I received a different product from the one I bought."),
        ("Vocês têm desconto para pagamento anual?", "Do you offer a discount for annual payment?"),
        ("As notificações pararam de chegar no meu celular.", "Notifications have stopped arriving on my phone."),
        ("Por favor, excluam minha conta e todos os meus dados.", "Please delete my account and all my data."),
        ("Aparece uma mensagem de erro quando tento salvar o formulário.", "An error message appears when I try to save the form."),
        ("Já faz quinze dias e o estorno ainda não caiu.", "It's been fifteen days and the refund still hasn't come through."),
        ("Gostaria de agendar uma demonstração para a minha equipe.", "I'd like to schedule a demo for my team."),
        ("A nota fiscal veio com o CNPJ errado.", "The invoice was issued with the wrong company tax ID (CNPJ)."),
        ("O produto é ótimo, mas a entrega atrasou uma semana.", "The product is great, but the delivery was a week late."),
        ("O código de verificação não chega por SMS.", "The verification code isn't arriving by SMS."),
        ("Quero mudar para o plano empresarial.", "I want to switch to the business plan."),
        ("Ao exportar a planilha, algumas colunas ficam em branco.", "When I export the spreadsheet, some columns come out blank."),
        ("Vocês entregam em Portugal?", "Do you deliver to Portugal?"),
        ("Estou há dois dias sem resposta do suporte.", "I've gone two days without a reply from support."),
        ("Preciso atualizar o número de telefone da minha conta.", "I need to update the phone number on my account."),
        ("O valor cobrado está diferente do que foi combinado.", "The amount charged is different from what was agreed."),
        ("Posso trocar um produto comprado na promoção?", "Can I exchange a product bought on sale?"),
        ("Como adiciono novos usuários à conta da empresa?", "How do I add new users to the company account?"),
        ("Parabéns pela nova versão, ficou muito mais rápida.", "Congratulations on the new version; it's much faster."),
        ("Minha conta foi bloqueada depois de várias tentativas de login.", "My account was locked after several login attempts."),
        ("Vocês podem confirmar se o boleto foi compensado?", "Can you confirm whether the boleto payment has cleared?"),
        ("O rastreamento do pedido não atualiza desde sexta-feira.", "The order tracking hasn't updated since Friday."),
        ("Não vou estar em casa amanhã. Dá para entregar na segunda?", "I won't be home tomorrow. Could you deliver on Monday?"),
        ("A importação de contatos trava no meio do processo.", "The contact import freezes halfway through."),
        ("Quanto tempo leva para o reembolso ser processado?", "How long does it take for the refund to be processed?"),
        ("Assinei o plano errado por engano. Dá para corrigir?", "I signed up for the wrong plan by mistake. Can it be fixed?"),
        ("Muito obrigada pela paciência de vocês!", "Thank you so much for your patience!"),
        ("O link de confirmação do e-mail está dando erro.", "The confirmation link in the email is giving an error."),
        ("É possível pausar a assinatura por um mês?", "Is it possible to pause the subscription for a month?"),
        ("A autenticação em dois fatores não funciona no meu celular novo.", "Two-factor authentication doesn't work on my new phone."),
    ],
    "it": [
        ("Ho dimenticato la password e l'email di recupero non arriva.", "I forgot my password and the recovery email isn't arriving."),
        ("Il mio ordine doveva arrivare ieri, ma non ho ancora ricevuto nulla.", "My order was supposed to arrive yesterday, but I still haven't received anything."),
        ("Vorrei un rimborso perché il prodotto non funziona.", "I'd like a refund because the product doesn't work."),
        ("L'app si blocca quando apro la sezione dei messaggi.", "The app freezes when I open the messages section."),
        ("Mi è stato addebitato due volte lo stesso importo.", "I was charged the same amount twice."),
        ("Grazie mille per l'assistenza, siete stati gentilissimi.", "Thank you so much for the support; you were extremely kind."),
        ("Possiamo spostare l'appuntamento a martedì pomeriggio?", "Can we move the appointment to Tuesday afternoon?"),
        ("Devo cambiare l'indirizzo di spedizione del mio ordine.", "I need to change the shipping address for my order."),
        ("Il pacco è arrivato bagnato e la scatola era rotta.", "The package arrived wet and the box was damaged."),
        ("Come posso scaricare le fatture degli ultimi mesi?", "How can I download the invoices from the last few months?"),
        ("Non riesco ad accedere al mio account da stamattina.", "I haven't been able to access my account since this morning."),
        ("Vorrei disdire l'abbonamento prima del rinnovo.", "I'd like to cancel the subscription before it renews."),
        ("Il codice sconto risulta scaduto, ma dovrebbe essere valido fino a domenica.", "The discount code shows as expired, but it should be valid until Sunday."),
        ("Il vostro servizio clienti è fantastico!", "Your customer service is fantastic!"),
        ("Come si cambia l'indirizzo email dell'account?", "How do I change the account's email address?"),
        ("Il sito è lentissimo da quando avete fatto l'aggiornamento.", "The site has been extremely slow since you did the update."),
        ("Ho ricevuto un colore diverso da quello che avevo ordinato.", "I received a different color from the one I had ordered."),
        ("Avete sconti per le scuole?", "Do you have discounts for schools?"),
        ("Non ricevo più le notifiche sul telefono.", "I no longer receive notifications on my phone."),
        ("Vi chiedo di cancellare il mio account e tutti i miei dati.", "Please delete my account and all my data."),
        ("Quando clicco su \"Salva\" compare un errore.", "When I click \"Save\", an error appears."),
        ("Aspetto ancora il rimborso dopo tre settimane.", "I'm still waiting for the refund after three weeks."),
        ("Sarebbe possibile fissare una chiamata per venerdì mattina?", "Would it be possible to schedule a call for Friday morning?"),
        ("Potete intestare la fattura alla mia azienda?", "Can you make the invoice out to my company?"),
        ("Il prodotto è ottimo, ma la consegna è stata lenta.", "The product is excellent, but the delivery was slow."),
        ("Il codice di verifica via SMS non mi arriva.", "I'm not getting the verification code by SMS."),
        ("Vorrei passare al piano Premium.", "I'd like to switch to the Premium plan."),
        ("L'esportazione in Excel non include le date.", "The Excel export doesn't include the dates."),
        ("Spedite anche in Svizzera?", "Do you also ship to Switzerland?"),
        ("Ho scritto al supporto quattro giorni fa e nessuno mi ha risposto.", "I wrote to support four days ago and nobody has replied."),
        ("Per favore, aggiornate il mio numero di telefono.", "Please update my phone number."),
        ("L'importo addebitato non corrisponde al prezzo indicato sul sito.", "The amount charged doesn't match the price shown on the website."),
        ("Posso restituire un articolo acquistato in saldo?", "Can I return an item bought on sale?"),
        ("Come faccio ad aggiungere un collega al nostro spazio di lavoro?", "How do I add a colleague to our workspace?"),
        ("La nuova versione dell'app è molto più intuitiva.", "The new version of the app is much more intuitive."),
        ("Il mio account è stato sospeso e non capisco il motivo.", "My account has been suspended and I don't understand why."),
        ("Potete confermarmi che il pagamento è andato a buon fine?", "Can you confirm that the payment went through?"),
        ("Il tracciamento della spedizione è fermo da giovedì.", "The shipment tracking has been stuck since Thursday."),
        ("Sabato non sono a casa, potete consegnare lunedì?", "I'm not home on Saturday; can you deliver on Monday?"),
        ("Il caricamento dei file si interrompe sempre a metà.", "File uploads always stop halfway."),
        ("Quanto tempo ci vuole per ricevere il rimborso dopo il reso?", "How long does it take to get the refund after a return?"),
        ("Ho scelto il piano sbagliato durante la registrazione.", "I chose the wrong plan when I registered."),
        ("Volevo ringraziarvi per la rapidità con cui avete risolto il problema.", "I wanted to thank you for solving the problem so quickly."),
        ("Il link di conferma nell'email non funziona.", "The confirmation link in the email doesn't work."),
        ("È possibile sospendere l'abbonamento per l'estate?", "Is it possible to suspend the subscription for the summer?"),
        ("Dopo aver cambiato telefono non riesco più a usare l'autenticazione a due fattori.", "Since changing phones, I can no longer use two-factor authentication."),
    ],
    "zh": [
        ("我忘记密码了，怎么重置？", "I forgot my password. How do I reset it?"),
        ("我的订单下了一个星期了，还没有发货。", "I placed my order a week ago and it still hasn't shipped."),
        ("商品有质量问题，我想申请退款。", "The product has a quality problem, and I'd like to request a refund."),
        ("应用一打开就闪退。", "The app crashes as soon as I open it."),
        ("这个月的会员费被扣了两次。", "This month's membership fee was charged twice."),
        ("谢谢你们的耐心帮助，问题已经解决了。", "Thank you for your patient help; the problem has been solved."),
        ("明天的会议能改到下午四点吗？", "Can tomorrow's meeting be moved to 4 p.m.?"),
        ("我想修改订单的收货地址。", "I'd like to change the delivery address for my order."),
        ("收到的包裹里少了一件商品。", "One item was missing from the package I received."),
        ("在哪里可以下载以前的发票？", "Where can I download previous invoices?"),
        ("更新之后我就登录不了了。", "I haven't been able to log in since the update."),
        ("我想取消自动续费。", "I want to cancel auto-renewal."),
        ("优惠码显示无效。", "The promo code shows as invalid."),
        ("你们的客服态度非常好，点赞！", "Your customer service is really friendly, thumbs up!"),
        ("怎样更换账号绑定的手机号？", "How do I change the phone number linked to my account?"),
        ("网站从今天早上开始就特别慢。", "The website has been extremely slow since this morning."),
        ("收到的尺码不对，可以换货吗？", "The size I received is wrong. Can I exchange it?"),
        ("请问有学生优惠吗？", "Is there a student discount?"),
        ("手机上收不到消息通知了。", "I'm no longer getting message notifications on my phone."),
        ("请注销我的账号并删除所有个人数据。", "Please close my account and delete all my personal data."),
        ("点击保存按钮没有任何反应。", "Clicking the save button does nothing."),
        ("退款申请已经提交十天了，还没有到账。", "I submitted the refund request ten days ago, and the money still hasn't arrived."),
        ("下周可以安排一次产品演示吗？", "Could we arrange a product demo next week?"),
        ("发票抬头需要改成公司名称。", "The invoice needs to be made out to the company name."),
        ("东西很好，就是物流太慢了。", "The item is great; the shipping was just too slow."),
        ("一直收不到短信验证码。", "I never receive the SMS verification code."),
        ("我想升级到企业版。", "I want to upgrade to the Enterprise edition."),
        ("导出的Excel文件打开是乱码。", "The exported Excel file shows garbled text when opened."),
        ("你们可以寄到香港吗？", "Can you ship to Hong Kong?"),
        ("我已经等了三天了，客服还没有回复。", "I've been waiting for three days and customer service still hasn't replied."),
        ("请帮我更新账户里的邮箱地址。", "Please update the email address on my account."),
        ("实际扣款金额和页面显示的价格不一样。", "The amount actually charged is different from the price shown on the page."),
        ("打折商品可以退货吗？", "Can discounted items be returned?"),
        ("怎么邀请同事加入团队空间？", "How do I invite colleagues to join the team space?"),
        ("新版界面比以前好用多了。", "The new interface is much easier to use than before."),
        ("我的账号被冻结了，不知道是什么原因。", "My account has been frozen, and I don't know why."),
        ("麻烦确认一下我的付款是否成功。", "Could you please confirm whether my payment went through?"),
        ("物流信息从周一开始就没有更新过。", "The shipping information hasn't been updated since Monday."),
        ("周末家里没人，能不能周一再送？", "Nobody is home on the weekend. Could you deliver on Monday instead?"),
        ("上传文件的时候总是提示网络错误。", "Uploading files always gives a network error."),
        ("退货后多久能收到退款？", "How long after returning an item will I get the refund?"),
        ("注册时选错了套餐，可以帮我改一下吗？", "I chose the wrong plan when I signed up. Can you change it for me?"),
        ("非常感谢小王的帮助，他解释得很清楚。", "Many thanks to Xiao Wang for his help; he explained everything very clearly."),
        ("邮件里的确认链接打不开。", "The confirmation link in the email won't open."),
        ("可以暂停订阅两个月吗？", "Can I pause my subscription for two months?"),
        ("换了新手机以后，双重验证就用不了了。", "Since I switched to a new phone, two-factor authentication doesn't work."),
    ],
    "ko": [
        ("비밀번호를 잊어버렸어요. 어떻게 재설정하나요?", "I forgot my password. How do I reset it?"),
        ("주문한 상품이 아직 도착하지 않았습니다.", "The item I ordered hasn't arrived yet."),
        ("제품에 하자가 있어서 환불을 요청하고 싶습니다.", "The product is defective, so I'd like to request a refund."),
        ("앱을 실행하면 바로 꺼져요.", "The app shuts down right after I launch it."),
        ("이번 달 구독료가 두 번 결제되었습니다.", "This month's subscription fee was charged twice."),
        ("친절하게 도와주셔서 정말 감사합니다.", "Thank you so much for helping me so kindly."),
        ("내일 회의를 오후 2시로 옮길 수 있을까요?", "Could we move tomorrow's meeting to 2 p.m.?"),
        ("배송지 주소를 변경하고 싶습니다.", "I'd like to change the shipping address."),
        ("받은 상자가 찢어져 있었고 제품이 파손되었습니다.", "The box I received was torn and the product was damaged."),
        ("지난달 영수증은 어디서 받을 수 있나요?", "Where can I get last month's receipt?"),
        ("업데이트 이후로 로그인이 안 됩니다.", "I haven't been able to log in since the update."),
        ("구독을 해지하고 싶어요.", "I want to cancel my subscription."),
        ("할인 코드를 입력했는데 적용이 안 돼요.", "I entered the discount code, but it isn't being applied."),
        ("상담원분이 너무 친절하셨어요.", "The support agent was very kind."),
        ("계정에 등록된 이메일 주소를 바꾸고 싶습니다.", "I'd like to change the email address registered to my account."),
        ("오늘 아침부터 사이트가 너무 느려요.", "The site has been really slow since this morning."),
        ("주문한 것과 다른 색상이 왔어요. 교환 가능한가요?", "I got a different color from what I ordered. Can I exchange it?"),
        ("학생 할인이 있나요?", "Is there a student discount?"),
        ("휴대폰으로 알림이 오지 않습니다.", "Notifications aren't coming through on my phone."),
        ("제 계정과 모든 개인 정보를 삭제해 주세요.", "Please delete my account and all my personal information."),
        ("저장 버튼을 누르면 오류 메시지가 나타납니다.", "When I press the save button, an error message appears."),
        ("환불 요청한 지 2주가 지났는데 아직 입금되지 않았습니다.", "It's been two weeks since I requested a refund, but it still hasn't been deposited."),
        ("다음 주에 데모 일정을 잡을 수 있을까요?", "Could we schedule a demo for next week?"),
        ("세금계산서를 회사 명의로 발행해 주실 수 있나요?", "Could you issue the tax invoice in the company's name?"),
        ("제품은 마음에 드는데 배송이 너무 늦었어요.", "I like the product, but the delivery was very late."),
        ("인증번호 문자가 오지 않아요.", "I'm not getting the verification code text."),
        ("프로 요금제로 업그레이드하고 싶습니다.", "I'd like to upgrade to the Pro plan."),
        ("엑셀로 내보내기를 하면 한글이 깨져요.", "When I export to Excel, the Korean text gets garbled."),
        ("해외 배송도 가능한가요?", "Do you also ship internationally?"),
        ("문의를 남긴 지 사흘이 지났는데 답변이 없습니다.", "It's been three days since I submitted my inquiry, and there's been no reply."),
        ("제 전화번호를 새 번호로 변경해 주세요.", "Please change my phone number to my new one."),
        ("결제된 금액이 홈페이지에 표시된 가격과 달라요.", "The amount charged is different from the price shown on the website."),
        ("세일 상품도 반품이 되나요?", "Can sale items be returned too?"),
        ("팀원을 워크스페이스에 초대하려면 어떻게 해야 하나요?", "What do I need to do to invite team members to the workspace?"),
        ("새로 바뀐 디자인이 훨씬 보기 좋네요.", "The new design looks much better."),
        ("계정이 잠겼는데 이유를 모르겠어요.", "My account is locked, and I don't know why."),
        ("제 결제가 정상적으로 처리되었는지 확인 부탁드립니다.", "Please check whether my payment was processed successfully."),
        ("배송 조회가 월요일 이후로 업데이트되지 않아요.", "The delivery tracking hasn't updated since Monday."),
        ("주말에는 집에 없으니 월요일에 배송해 주세요.", "I won't be home over the weekend, so please deliver on Monday."),
        ("파일을 업로드하다가 중간에 멈춥니다.", "File uploads stop partway through."),
        ("반품 후 환불까지 얼마나 걸리나요?", "How long does it take to get a refund after a return?"),
        ("가입할 때 요금제를 잘못 선택했어요.", "I chose the wrong plan when I signed up."),
        ("빠르게 해결해 주셔서 감사합니다.", "Thank you for resolving it so quickly."),
        ("이메일에 있는 인증 링크가 열리지 않아요.", "The verification link in the email won't open."),
        ("구독을 한 달 동안 일시 정지할 수 있나요?", "Can I pause my subscription for a month?"),
        ("휴대폰을 바꾼 후로 2단계 인증이 안 돼요.", "Two-step verification hasn't worked since I changed phones."),
    ],
    # For English the "source" is the clean text; the user message gets light
    # noise (casing, spacing, missing final period) that the answer removes.
    "en": [
        ("I can't remember my password and the reset email never shows up.", None),
        ("My package was supposed to arrive on Friday but tracking still says \"label created\".", None),
        ("Can I get a refund for the annual plan I bought by mistake?", None),
        ("The app freezes whenever I try to attach a PDF.", None),
        ("You charged my card twice for the same order.", None),
        ("Thanks so much for sorting this out so quickly!", None),
        ("Could we push our onboarding call to next Wednesday?", None),
        ("I need to update the shipping address on order 4471.", None),
        ("The headphones arrived with a cracked case.", None),
        ("Where do I find last year's invoices?", None),
        ("I keep getting logged out every few minutes.", None),
        ("Please cancel my subscription at the end of this billing period.", None),
        ("The promo code from your newsletter isn't working.", None),
        ("Your support team has been amazing, thank you.", None),
        ("How do I change the email on my account?", None),
        ("The dashboard has been really slow all afternoon.", None),
        ("I ordered a medium but got a large. Can I swap it?", None),
        ("Do you offer discounts for teachers?", None),
        ("I stopped getting push notifications after the last update.", None),
        ("Please delete my account and any data you have about me.", None),
        ("Clicking \"Export\" just shows a spinning wheel forever.", None),
        ("It's been two weeks and I still haven't seen my refund.", None),
        ("Can someone from sales give us a demo on Thursday?", None),
        ("Please add our company's tax ID to the next invoice.", None),
        ("Great product, but the delivery took almost a month.", None),
        ("The verification code text message never arrives.", None),
        ("We'd like to move from the Starter plan to Team.", None),
        ("The CSV export cuts off after 1,000 rows.", None),
        ("Do you ship to Canada?", None),
        ("I've been on hold for forty minutes.", None),
        ("Please update the phone number on file for me.", None),
        ("The price at checkout was higher than the one on the product page.", None),
        ("Can I return something I bought on clearance?", None),
        ("How do I give my assistant access to my calendar?", None),
        ("The new dark mode looks fantastic.", None),
        ("My account says it's been suspended, but I paid my bill.", None),
        ("Can you confirm you received my payment from Monday?", None),
        ("The tracking number you sent me doesn't work.", None),
        ("I won't be home Tuesday. Can the delivery be rescheduled?", None),
        ("Uploads fail with a \"network error\" even though my internet is fine.", None),
        ("How long do refunds usually take to show up?", None),
        ("I signed up for the wrong plan. Can you switch it for me?", None),
        ("Huge thanks to Sam for walking me through the setup.", None),
        ("The confirmation link in your email says it's expired.", None),
        ("Is there a way to pause my membership for the summer?", None),
        ("Two-factor authentication stopped working when I got a new phone.", None),
    ],
}

# Greetings / sign-offs that fit any message, with their English renderings.
TRANSLATE_WRAPPERS = {
    "ja": {"open": [("こんにちは。", "Hello.")],
           "close": [("ありがとうございます。", "Thank you."), ("よろしくお願いいたします。", "Thank you in advance.")]},
    "es": {"open": [("¡Hola!", "Hi!"), ("Buenos días.", "Good morning.")],
           "close": [("Gracias.", "Thank you."), ("Un saludo.", "Best regards.")]},
    "fr": {"open": [("Bonjour.", "Hello."), ("Bonsoir.", "Good evening.")],
           "close": [("Merci.", "Thank you."), ("Cordialement.", "Best regards.")]},
    "de": {"open": [("Hallo!", "Hello!"), ("Guten Tag.", "Hello.")],
           "close": [("Danke.", "Thanks."), ("Vielen Dank.", "Thank you very much.")]},
    "pt": {"open": [("Olá!", "Hi!"), ("Bom dia.", "Good morning.")],
           "close": [("Obrigado.", "Thank you."), ("Obrigada.", "Thank you.")]},
    "it": {"open": [("Salve.", "Hello."), ("Buongiorno.", "Good morning.")],
           "close": [("Grazie.", "Thank you."), ("Cordiali saluti.", "Kind regards.")]},
    "zh": {"open": [("你好！", "Hello!"), ("您好！", "Hello!")],
           "close": [("谢谢！", "Thank you!"), ("谢谢。", "Thanks.")]},
    "ko": {"open": [("안녕하세요.", "Hello.")],
           "close": [("감사합니다.", "Thank you."), ("고맙습니다.", "Thank you.")]},
    "en": {"open": [("Hi there.", "Hi there."), ("Hello!", "Hello!")],
           "close": [("Thanks.", "Thanks."), ("Thank you!", "Thank you!")]},
}

TRANSLATE_LANGS = ["ja", "es", "fr", "de", "pt", "it", "zh", "ko", "en"]
NO_SPACE_LANGS = {"ja", "zh"}
TRANSLATE_HELDOUT_PER_LANG = 6


def english_noise(text, rng):
    """Light, reversible noise for English inputs; the answer is the clean text."""
    out = text
    if rng.random() < 0.45:
        out = out[0].lower() + out[1:]
    if rng.random() < 0.35:
        out = re.sub(r"\bI\b", "i", out)
    if out.endswith(".") and rng.random() < 0.5:
        out = out[:-1]
    if ". " in out and rng.random() < 0.4:
        out = out.replace(". ", ".  ", 1)
    if rng.random() < 0.15:
        out = out + " "
    return out


def translate_message(rng, lang, src, en):
    wrap = TRANSLATE_WRAPPERS[lang]
    r = rng.random()
    use_open = r < 0.25 or 0.6 <= r < 0.75
    use_close = 0.25 <= r < 0.45 or 0.6 <= r < 0.75
    sep = "" if lang in NO_SPACE_LANGS else " "
    src_parts, en_parts = [], []
    if use_open:
        o = rng.choice(wrap["open"])
        src_parts.append(o[0]); en_parts.append(o[1])
    src_parts.append(src); en_parts.append(en)
    if use_close:
        c = rng.choice(wrap["close"])
        src_parts.append(c[0]); en_parts.append(c[1])
    return sep.join(src_parts), " ".join(en_parts)


def build_translate():
    rng = random.Random(20240612)
    train, heldout = [], []
    seen = set()
    for lang in TRANSLATE_LANGS:
        pairs = TRANSLATE_PAIRS[lang]
        assert len(pairs) >= 46, (lang, len(pairs))
        assert len({p[0] for p in pairs}) == len(pairs), ("duplicate source", lang)
        if lang == "en":
            pairs = [(p[0], p[0]) for p in pairs]
        order = list(range(len(pairs)))
        rng.shuffle(order)
        for k, idx in enumerate(order):
            src, en = pairs[idx]
            for _ in range(50):
                msg, trans = translate_message(rng, lang, src, en)
                if lang == "en":
                    msg = english_noise(msg, rng)
                if msg not in seen:
                    break
            assert msg not in seen
            seen.add(msg)
            row = chat_row(SYSTEM_TRANSLATE, msg, {"translation": trans, "detectedLanguage": lang})
            (heldout if k < TRANSLATE_HELDOUT_PER_LANG else train).append(row)
    rng.shuffle(train)
    rng.shuffle(heldout)
    return train, heldout


# ---------------------------------------------------------------------------
# 3. REDACTION
# ---------------------------------------------------------------------------
#
# Templates mark personal data with {SLOTS}; the user text gets generated
# fictional values and redactedText gets "[REDACTED]" for exactly those
# spans, so the labels are correct by construction. Non-personal slots
# (order numbers, meeting dates, amounts, ...) stay visible in the output and
# act as hard negatives.

PII_TAG = {
    "NAME": "NAME", "NAME2": "NAME", "FIRST": "NAME", "FIRST2": "NAME", "LAST": "NAME",
    "EMAIL": "EMAIL", "EMAIL2": "EMAIL",
    "PHONE": "PHONE", "PHONE2": "PHONE",
    "ADDRESS": "ADDRESS",
    "CARD": "CREDIT_CARD",
    "IP": "IP_ADDRESS", "IP2": "IP_ADDRESS",
    "DOB": "DATE_OF_BIRTH",
    "SSN": "ID_NUMBER", "PASSPORT": "ID_NUMBER", "LICENSE": "ID_NUMBER",
    "NINO": "ID_NUMBER", "TAXID": "ID_NUMBER",
}

REDACTION_TRAIN_TEMPLATES = [
    "Hi {FIRST}, thanks for your order {ORDER}. We'll ship it to {ADDRESS} by {DATE}. If anything changes, call us at {PHONE}.",
    "Name: {NAME}\nEmail: {EMAIL}\nPhone: {PHONE}\nMessage: I'd like a quote for {COUNT} office chairs delivered next month.",
    "Customer {NAME} (DOB {DOB}) called about a billing error on order {ORDER}. Identity verified; refund of {AMOUNT} approved.",
    "Please update the card on file to {CARD}. The old one was cancelled after a fraud alert. Thanks, {FIRST}",
    "Security log: failed login for {EMAIL} from {IP} at {TIME}. Account locked after 5 attempts.",
    "hey {FIRST}! are we still on for lunch {WEEKDAY}? text me at {PHONE} when you're out of your meeting",
    "Applicant: {NAME}\nDate of birth: {DOB}\nPassport no.: {PASSPORT}\nAddress: {ADDRESS}",
    "Hi team, the build server at {IP} is rejecting SSH connections again. Can someone from infra take a look before the {TIME} deploy?",
    "Dear Dr. {LAST},\nI'm writing to confirm my appointment on {DATE} at {TIME}. For your records, my date of birth is {DOB}.\nBest regards,\n{NAME2}",
    "Refund request {TICKET}: the customer says the {AMOUNT} charge on card {CARD} was never authorised. Contact: {EMAIL}.",
    "Can you ship the replacement to my new address instead? It's {ADDRESS}. Thanks, {FIRST}",
    "{NAME} ({EMAIL}) has requested access to the Finance shared drive. Please approve or deny by {DATE}.",
    "Driver's license {LICENSE}, issued to {NAME}, was scanned at the front desk at {TIME}.",
    "Hi, I'm locked out of my account. I sign in with {EMAIL} and my last login was from {IP}. Could you reset it?",
    "Support chat transcript\nAgent: Can I have your full name and a callback number?\nCustomer: Sure, it's {NAME}, {PHONE}.\nAgent: Thanks! Order {ORDER} is out for delivery today.",
    "New hire paperwork for {NAME}: SSN {SSN}, date of birth {DOB}, start date {DATE}. Please file it with HR.",
    "The package for order {ORDER} was returned to sender. Can you confirm whether {ADDRESS} is still correct?",
    "Servers {IP} and {IP2} both went offline at {TIME}. Ticket {TICKET} has been opened with the hosting provider.",
    "Hi {FIRST}, I've cc'd {NAME2}, who handles invoicing. You can reach them directly at {EMAIL2} or {PHONE2}.",
    "Form submission\nFull name: {NAME}\nDOB: {DOB}\nNational Insurance number: {NINO}\nPhone: {PHONE}\nEmail: {EMAIL}",
    "Just left you a voicemail. My cell is {PHONE} if the office line doesn't work. - {FIRST}",
    "We noticed a sign-in to your {COMPANY} account from a new device ({IP}). If this wasn't you, reset your password right away.",
    "Can you check why the payment with card {CARD} failed? The customer, {NAME}, says it worked fine last month.",
    "Please send the signed lease to {NAME} at {ADDRESS}. A scanned copy to {EMAIL} works too.",
    "i moved! new address is {ADDRESS}. also my number changed to {PHONE}",
    "Patient {NAME}, born {DOB}, reports mild headaches since {WEEKDAY}. Follow-up scheduled for {DATE}.",
    "Passport {PASSPORT} for traveller {NAME} expires in three months. Please remind them before the {DATE} trip.",
    "The firewall blocked {REQS} requests from {IP} in the last hour. Looks like a scanner, so I'm adding it to the deny list.",
    "Hey {FIRST}, {FIRST2} mentioned you're looking for a contractor. You can email {FIRST2} at {EMAIL2}.",
    "Billing contact changed from {NAME} to {NAME2} ({EMAIL2}), effective {DATE}.",
    "Our office gateway is {IP}; if you're on the VPN you should see {IP2} instead.",
    "To verify your identity we compared the SSN you gave us ({SSN}) with the one on file. They match, so your account is unlocked.",
    "The courier couldn't find {ADDRESS}. Please call the customer on {PHONE} to arrange a new delivery slot.",
    "Emergency contact: {NAME2}, {PHONE2}. Employee: {NAME}, DOB {DOB}.",
    "From: {EMAIL}\nSubject: Wrong item\nI received a blue kettle instead of the red one I ordered ({ORDER}). Can you swap it?\n{NAME}",
    "Please email the deposit receipt to {EMAIL}. Our office is at {ADDRESS} if you'd rather drop off a cheque.",
    "{FIRST} here - can you double-check the tax ID on my profile? It should be {TAXID}, not the old one.",
    "Rental application: tenant {NAME}, DOB {DOB}, driver's license {LICENSE}, current address {ADDRESS}.",
    "Whoever is on {IP} on the guest wifi, please pause that download, it's slowing everyone down.",
    "Hi {NAME}, your card {CARD} will be charged {AMOUNT} on {DATE} for your annual renewal.",
    "Can someone call {FIRST} back at {PHONE}? They asked about bulk pricing for {COUNT} licences.",
    "Account recovery request from {EMAIL}. Provided DOB {DOB} and phone {PHONE}. Request came from IP {IP}.",
    "Visa application for {NAME}: passport {PASSPORT}, born {DOB}, residing at {ADDRESS}, contact {PHONE}.",
    "Reminder for {FIRST}: your dentist appointment is on {WEEKDAY} at {TIME}. Reply C to confirm or call {PHONE} to reschedule.",
    "Can you forward the contract to {NAME}? Their email is {EMAIL} and they're based in our {CITY} office.",
    "Order {ORDER} placed by {NAME}, card {CARD}, shipping to {ADDRESS}. Flagged for review: IP {IP} doesn't match the billing country.",
    "hi, can u tell {FIRST2} i'll be late? stuck in traffic. be there by {TIME}",
    "Wedding RSVP: {NAME} and {NAME2}, no dietary restrictions. Please mail the invitation to {ADDRESS}.",
    "Note to self: renew passport ({PASSPORT}) before {DATE} and update the address with the bank.",
    "The caller gave their name as {NAME} and their card number as {CARD}, but the billing address didn't match, so I declined the order.",
    "Thanks for the call today, {FIRST}. As discussed, I've attached the proposal; my direct line is {PHONE} if you have questions.\n{NAME2}",
    "{NAME} - SSN {SSN} - DOB {DOB}\nW-4 received, payroll setup complete.",
    "Device {IP} has been making repeated failed requests to the login endpoint since {TIME}. Blocking it for 24 hours.",
    "Hello, I'd like to update my contact details. New email: {EMAIL}. New mobile: {PHONE}. Please keep the old address for post.",
    "Got your parcel! It was left with my neighbour at {ADDRESS} though, not at my door.",
    # no personal data
    "Reminder: the quarterly review is on {DATE} at {TIME} in room {ROOM}. Please bring updated numbers.",
    "Thanks for contacting {COMPANY} support. Your ticket {TICKET} has been received and an agent will reply within {HOURS} hours.",
    "Meeting notes, {DATE}: we agreed to move the launch to {DATE2}. Action items: update the roadmap and send a summary to the team.",
    "Hi, your order {ORDER} has shipped and should arrive by {DATE}. You can track it anytime in your account.",
    "Congrats to the whole support team for hitting a {PCT}% satisfaction score this quarter!",
    "Update: the incident affecting {PRODUCT} was resolved at {TIME}. Root cause was an expired certificate.",
    "Lost and found: a blue umbrella was handed in at reception on {WEEKDAY}. Come by to claim it.",
    "Quick note: the vendor portal is moving to a new URL. Old bookmarks will redirect until {DATE}.",
    "The team offsite is confirmed for {DATE}. Budget is {AMOUNT} per person; let me know about dietary needs by {WEEKDAY}.",
    "Your password was changed on {DATE} at {TIME}. If you didn't make this change, contact support immediately.",
    "Please don't paste customer data into {TOOL} threads. Use the secure portal instead; ticket {TICKET} has the details.",
    "Refund of {AMOUNT} processed for order {ORDER}. It should appear on the original payment method within {DAYS} business days.",
    "The {CITY} office will be closed on {DATE} for maintenance. Remote work is encouraged.",
]

# Templates used only for heldout rows.
REDACTION_HELDOUT_TEMPLATES = [
    "Hello, this is {NAME}. I changed banks, so please charge my new card {CARD} from now on. My billing address is {ADDRESS}.",
    "Login alert: {EMAIL} signed in from {IP} on {DATE} at {TIME}.",
    "Intake form\nName: {NAME}\nDate of birth: {DOB}\nSSN: {SSN}\nCell: {PHONE}",
    "Hey {FIRST}, can you send the slides to {NAME2} before {TIME}? Their email is {EMAIL2}.",
    "Boarding pass issued to {NAME}, passport {PASSPORT}. Gate changes will be texted to {PHONE}.",
    "Blocked {REQS} login attempts from {IP} and {IP2} against the admin panel overnight.",
    "Dear {NAME}, the driver's license on file ({LICENSE}) expires on {DATE}. Please upload a new copy when you can.",
    "Can you call me at {PHONE}? I'm at {ADDRESS} and the technician still hasn't arrived.",
    "Chat log\n{FIRST}: my date of birth is {DOB} and my NI number is {NINO}\nAgent: thanks, you're verified",
    # no personal data
    "The office move is scheduled for {DATE}. Please pack your desks by {WEEKDAY} evening.",
    "Please return the faulty router to our service centre and include ticket {TICKET} in the box.",
]

FIRST_NAMES = ["Maria", "James", "Aisha", "Kenji", "Sofia", "Liam", "Priya", "Mateo", "Chloé", "Oluwaseun",
               "Hannah", "Wei", "Fatima", "Lucas", "Ingrid", "Diego", "Amara", "Noah", "Yuki", "Elena",
               "Tomasz", "Grace", "Arjun", "Leila", "Connor", "Mei", "Rafael", "Zanele", "Henrik", "Nadia",
               "Samuel", "Isabela", "Omar", "Freya", "Daniel", "Anika", "Joon", "Beatriz", "Marcus", "Renée",
               "José", "Emily", "Tariq", "Lena", "Patrick", "Ximena", "Kofi", "Sara", "Ethan", "Hyun-woo"]
LAST_NAMES = ["Okafor", "Lindqvist", "Moreno", "Tanaka", "Kowalski", "Fitzgerald", "Haddad", "Nguyen",
              "Schneider", "Ramirez", "Patel", "O'Brien", "Dubois", "Chen", "Mensah", "Rossi", "Andersen",
              "Kim", "Silva", "Novak", "Whitaker", "Abernathy", "Castillo", "Yamamoto", "Müller", "Osei",
              "Petrov", "Delgado", "Hughes", "Sato", "Bergström", "Farouk", "Lopes", "MacLeod", "Ivanova",
              "Costa", "Brennan", "Alvarez", "Park", "Singh"]
EMAIL_DOMAINS = ["example.com", "example.org", "example.net", "mail.example.com", "inbox.example",
                 "northwind.example", "acmecorp.example", "brightline.example"]
US_STREETS = ["Maple Street", "Oak Avenue", "Birchwood Lane", "Harbor View Road", "Elm Court", "Cedar Drive",
              "Willow Way", "Linden Boulevard", "Juniper Place", "Riverside Drive", "Chestnut Street", "Aspen Terrace"]
US_CITIES = [("Springfield", "IL"), ("Riverton", "WY"), ("Fairview", "OR"), ("Lakewood", "CO"),
             ("Millbrook", "NY"), ("Greenville", "SC"), ("Brookhaven", "GA"), ("Oakridge", "TN"), ("Madison", "WI")]
UK_STREETS = ["Kingsley Road", "Foxglove Close", "Orchard Lane", "Station Road", "Mill Street", "Church Walk", "Meadow Rise"]
UK_TOWNS = ["Ashford", "Harrogate", "Wokingham", "Stockport", "Kendal", "Truro"]
MONTHS = ["January", "February", "March", "April", "May", "June", "July", "August",
          "September", "October", "November", "December"]
LETTERS = "ABCDEFGHJKLMNPRSTWXYZ"

NON_PII_VALUES = {
    "TIME": ["9:30 am", "10:15", "2pm", "14:00", "4:45 pm", "noon", "8:05 am", "17:30", "11 am"],
    "DATE": ["March 4", "June 18", "Friday, May 9", "2025-06-12", "July 1st", "October 30",
             "April 22", "September 3", "12 November", "January 15", "Monday, August 11"],
    "COMPANY": ["Northwind", "Brightline", "Acme Cloud", "Bluefin Bank", "Harborview Telecom",
                "Greenleaf Energy", "Parcelio", "Quillstone"],
    "PRODUCT": ["the customer portal", "the mobile app", "checkout", "the reporting dashboard",
                "the public API", "single sign-on"],
    "TOOL": ["Slack", "Teams", "WhatsApp", "email"],
    "WEEKDAY": ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday"],
    "ROOM": ["4B", "Atlas", "12.03", "Orion", "Maple", "2F-East"],
    "CITY": ["Denver", "Lisbon", "Toronto", "Austin", "Dublin", "Singapore", "Manchester", "Melbourne"],
    "PCT": ["91", "92", "94", "96", "97", "98"],
    "COUNT": ["3", "5", "8", "12", "20", "25", "40", "60", "150"],
    "HOURS": ["2", "4", "12", "24", "48"],
    "DAYS": ["3", "5", "7", "10"],
    "REQS": ["180", "420", "1,250", "3,400", "9,800"],
}
NON_PII_VALUES["DATE2"] = NON_PII_VALUES["DATE"]


def ascii_fold(s):
    s = unicodedata.normalize("NFKD", s)
    return "".join(c for c in s if c.isascii() and c.isalnum()).lower()


def gen_email(person, rng):
    first, last = ascii_fold(person[0]), ascii_fold(person[1])
    user = rng.choice([f"{first}.{last}", f"{first[0]}{last}", f"{first}{rng.randint(2, 99)}",
                       f"{first}_{last}", f"{last}.{first}", f"{first}{last[0]}"])
    return f"{user}@{rng.choice(EMAIL_DOMAINS)}"


def gen_phone(rng):
    area = rng.choice(["202", "312", "415", "503", "617", "720", "801", "919"])
    d2 = rng.randint(0, 99)
    d3 = rng.randint(0, 999)
    return rng.choice([
        f"({area}) 555-01{d2:02d}",
        f"+1 {area}-555-01{d2:02d}",
        f"{area}.555.01{d2:02d}",
        f"+44 7700 900{d3:03d}",
        f"07700 900{d3:03d}",
        f"+61 491 570 {d3:03d}",
        f"+33 6 {rng.randint(10, 99)} {rng.randint(10, 99)} {rng.randint(10, 99)} {rng.randint(10, 99)}",
        f"+49 151 {rng.randint(1000000, 9999999)}",
    ])


def gen_address(rng):
    k = rng.randrange(4)
    num = rng.randint(2, 2999)
    if k == 0:
        city, st = rng.choice(US_CITIES)
        return f"{num} {rng.choice(US_STREETS)}, {city}, {st} {rng.randint(10000, 99999)}"
    if k == 1:
        city, st = rng.choice(US_CITIES)
        return f"{num} {rng.choice(US_STREETS)}, Apt {rng.randint(1, 40)}{rng.choice('ABCD')}, {city}, {st} {rng.randint(10000, 99999)}"
    if k == 2:
        pc = f"{rng.choice(LETTERS)}{rng.choice(LETTERS)}{rng.randint(1, 29)} {rng.randint(1, 9)}{rng.choice(LETTERS)}{rng.choice(LETTERS)}"
        return f"{rng.randint(1, 180)} {rng.choice(UK_STREETS)}, {rng.choice(UK_TOWNS)} {pc}"
    return f"{num} {rng.choice(US_STREETS + UK_STREETS)}"


def luhn_number(prefix, length, rng):
    digits = [int(c) for c in prefix]
    while len(digits) < length - 1:
        digits.append(rng.randint(0, 9))
    total = 0
    for i, d in enumerate(reversed(digits)):
        if i % 2 == 0:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return "".join(map(str, digits)) + str((10 - total % 10) % 10)


def gen_card(rng):
    sep = rng.choice([" ", " ", "-", ""])
    kind = rng.randrange(3)
    if kind == 2:
        n = luhn_number(rng.choice(["34", "37"]), 15, rng)
        return sep.join([n[:4], n[4:10], n[10:]])
    n = luhn_number("4" if kind == 0 else str(rng.randint(51, 55)), 16, rng)
    return sep.join(n[i:i + 4] for i in range(0, 16, 4))


def gen_ip(rng):
    k = rng.randrange(7)
    o = lambda: rng.randint(1, 254)
    if k == 0:
        return f"192.0.2.{o()}"
    if k == 1:
        return f"198.51.100.{o()}"
    if k == 2:
        return f"203.0.113.{o()}"
    if k == 3:
        return f"10.{rng.randint(0, 255)}.{rng.randint(0, 255)}.{o()}"
    if k == 4:
        return f"192.168.{rng.randint(0, 20)}.{o()}"
    if k == 5:
        return f"172.{rng.randint(16, 31)}.{rng.randint(0, 255)}.{o()}"
    return f"2001:db8:{rng.randint(1, 0xffff):x}::{rng.randint(1, 0xfff):x}"


def gen_dob(rng):
    y, m, d = rng.randint(1948, 2005), rng.randint(1, 12), rng.randint(1, 28)
    return rng.choice([
        f"{m:02d}/{d:02d}/{y}",
        f"{d:02d}.{m:02d}.{y}",
        f"{y}-{m:02d}-{d:02d}",
        f"{MONTHS[m - 1]} {d}, {y}",
        f"{d} {MONTHS[m - 1]} {y}",
    ])


def gen_ssn(rng):
    a = rng.choice([n for n in range(1, 900) if n != 666])
    return f"{a:03d}-{rng.randint(1, 99):02d}-{rng.randint(1, 9999):04d}"


def gen_passport(rng):
    return rng.choice([
        f"{rng.choice(LETTERS)}{rng.randint(10000000, 99999999)}",
        f"{rng.randint(100000000, 999999999)}",
        f"{rng.choice(LETTERS)}{rng.choice(LETTERS)}{rng.randint(1000000, 9999999)}",
    ])


def gen_license(rng):
    return rng.choice([
        f"{rng.choice(LETTERS)}{rng.randint(100, 999)}-{rng.randint(1000, 9999)}-{rng.randint(1000, 9999)}",
        f"D{rng.randint(1000000, 9999999)}",
        f"{rng.choice(LETTERS)}{rng.randint(100000000000, 999999999999)}",
    ])


def gen_nino(rng):
    pre = rng.choice(["AB", "CE", "JG", "KL", "NP", "PR", "SW", "TM", "WH", "ZR"])
    return f"{pre} {rng.randint(10, 99)} {rng.randint(10, 99)} {rng.randint(10, 99)} {rng.choice('ABCD')}"


def gen_taxid(rng):
    return rng.choice([
        f"9{rng.randint(10, 99)}-7{rng.randint(0, 9)}-{rng.randint(1000, 9999)}",
        f"{rng.randint(100, 999)} {rng.randint(100, 999)} {rng.randint(100, 999)}",
    ])


def gen_order(rng):
    return rng.choice([f"#{rng.randint(10000, 999999)}", f"ORD-{rng.randint(100000, 999999)}",
                       f"A{rng.randint(1000, 9999)}-{rng.randint(10, 99)}"])


def gen_ticket(rng):
    return rng.choice([f"#{rng.randint(20000, 99999)}", f"TCK-{rng.randint(1000, 9999)}",
                       f"SR-{rng.randint(100000, 999999)}"])


def gen_amount(rng):
    return rng.choice([f"${rng.randint(9, 480)}.{rng.choice(['00', '50', '99'])}",
                       f"€{rng.randint(12, 900)}", f"£{rng.randint(5, 350)}.00"])


def gen_value(key, people, rng):
    p1, p2 = people
    if key == "NAME":
        return f"{p1[0]} {p1[1]}"
    if key == "NAME2":
        return f"{p2[0]} {p2[1]}"
    if key == "FIRST":
        return p1[0]
    if key == "FIRST2":
        return p2[0]
    if key == "LAST":
        return p1[1]
    if key == "EMAIL":
        return gen_email(p1, rng)
    if key == "EMAIL2":
        return gen_email(p2, rng)
    if key in ("PHONE", "PHONE2"):
        return gen_phone(rng)
    if key == "ADDRESS":
        return gen_address(rng)
    if key == "CARD":
        return gen_card(rng)
    if key in ("IP", "IP2"):
        return gen_ip(rng)
    if key == "DOB":
        return gen_dob(rng)
    if key == "SSN":
        return gen_ssn(rng)
    if key == "PASSPORT":
        return gen_passport(rng)
    if key == "LICENSE":
        return gen_license(rng)
    if key == "NINO":
        return gen_nino(rng)
    if key == "TAXID":
        return gen_taxid(rng)
    if key == "ORDER":
        return gen_order(rng)
    if key == "TICKET":
        return gen_ticket(rng)
    if key == "AMOUNT":
        return gen_amount(rng)
    return rng.choice(NON_PII_VALUES[key])


def render_redaction(template, rng):
    f1, f2 = rng.sample(FIRST_NAMES, 2)
    l1, l2 = rng.sample(LAST_NAMES, 2)
    people = ((f1, l1), (f2, l2))
    values = {}
    original, redacted = [], []
    count = 0
    tags = set()
    pos = 0
    for m in SLOT_RE.finditer(template):
        lit = template[pos:m.start()]
        original.append(lit)
        redacted.append(lit)
        key = m.group(1)
        if key not in values:
            value = gen_value(key, people, rng)
            while key in ("IP2", "DATE2") and value == values.get(key[:-1]):
                value = gen_value(key, people, rng)
            values[key] = value
        original.append(values[key])
        if key in PII_TAG:
            redacted.append("[REDACTED]")
            count += 1
            tags.add(PII_TAG[key])
        else:
            redacted.append(values[key])
        pos = m.end()
    original.append(template[pos:])
    redacted.append(template[pos:])
    text = "".join(original)
    answer = {"redactedText": "".join(redacted), "redactedCount": count, "tags": sorted(tags)}
    return text, answer


def build_redaction_rows(templates, rng, per_pii_template, per_clean_template, seen):
    rows = []
    for template in templates:
        keys = slots_in(template)
        assert sum(k in PII_TAG for k in keys) <= 5, template
        for k in keys:
            assert k in PII_TAG or k in NON_PII_VALUES or k in ("ORDER", "TICKET", "AMOUNT"), (k, template)
        has_pii = any(k in PII_TAG for k in keys)
        want = per_pii_template if has_pii else per_clean_template
        made = 0
        for _ in range(200):
            if made == want:
                break
            text, answer = render_redaction(template, rng)
            if text in seen:
                continue
            seen.add(text)
            rows.append(chat_row(SYSTEM_REDACTION, text, answer))
            made += 1
        assert made == want, ("not enough unique renderings", template)
    return rows


def build_redaction():
    rng = random.Random(20240613)
    seen = set()
    train = build_redaction_rows(REDACTION_TRAIN_TEMPLATES, rng, 6, 3, seen)
    heldout = build_redaction_rows(REDACTION_HELDOUT_TEMPLATES, rng, 5, 3, seen)
    rng.shuffle(train)
    rng.shuffle(heldout)
    return train, heldout


# ---------------------------------------------------------------------------

def main():
    builders = {"triage": build_triage, "translate": build_translate, "redaction": build_redaction}
    for name, build in builders.items():
        train, heldout = build()
        for split, rows in (("train", train), ("heldout", heldout)):
            path = os.path.join(HERE, name, "data", f"{split}.jsonl")
            write_jsonl(path, rows)
            print(f"{os.path.relpath(path, HERE)}: {len(rows)} rows, {os.path.getsize(path)} bytes")


if __name__ == "__main__":
    main()
