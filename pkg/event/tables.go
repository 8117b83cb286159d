package event

// The six catalogues, row for row as in the seed's example payloads: name,
// type (derived from the example value), the example value itself and the
// seed's comment as the description.

var actionLifecycleRows = []row{
	{"CampaignId", Integer, int64(9876), "Program ID"},
	{"ActionTrackerId", Integer, int64(12345), "Event Type ID"},
	{"MediaPartnerId", Integer, int64(555), "Partner ID"},
	{"CampaignName", String, "Spring Global Promotion", "Program Name"},
	{"ActionTrackerName", String, "Standard Sale Tracker", "Event Type Name"},
	{"MediaPartnerName", String, "Top Tier Affiliates", "Partner Name"},
	{"ActionId", String, "ACT-778899", "Action ID"},
	{"Status", String, "MODIFIED", "Action Status"},
	{"StatusDetail", String, "Item return - payout adjusted", "More details about the action status"},
	{"AdId", Integer, int64(44332), "Ad ID"},
	{"Payout", Decimal, 10.50, "Action payout to the Partner, in the partner's currency"},
	{"DeltaPayout", Decimal, -5.00, "The change of the Payout Amount"},
	{"IntendedPayout", Decimal, 15.50, "The intended Payout Amount for an overlimit action"},
	{"Amount", Decimal, 100.00, "Action amount, in the account's currency"},
	{"DeltaAmount", Decimal, -50.00, "Corrected Amount from previous action"},
	{"IntendedAmount", Decimal, 150.00, "The intended Sale Amount for an overlimit action"},
	{"Currency", String, "USD", "Currency for the action"},
	{"OriginalCurrency", String, "USD", "Original (i.e. cart) currency for the action"},
	{"OriginalAmount", Decimal, 100.00, "Original (i.e. cart) amount for the action"},
	{itemsMarker, 0, nil, "Data for individual items in this action"},
	{"EventDate", DateTime, "2026-04-08T09:00:00Z", "Date of conversion"},
	{"CreationDate", DateTime, "2026-04-08T09:05:00Z", "Date created in system"},
	{"LockingDate", DateTime, "2026-05-08T00:00:00Z", "Date action will be locked"},
	{"ClearedDate", DateTime, "2026-05-15T00:00:00Z", "Date scheduled to clear"},
	{"ReferringDomain", String, "blog.partner.com", "Domain of referral"},
	{"LandingPageUrl", String, "https://brand.com/sale", "URL of landing page"},
	{"RefCustomerArea", String, "California", "Customer Area (IP derived)"},
	{"RefCustomerCity", String, "San Francisco", "Customer City (IP derived)"},
	{"RefCustomerRegion", String, "CA", "Customer Region (IP derived)"},
	{"RefCustomerCountry", String, "US", "Customer Country Code (IP derived)"},
	{"RefClickId", String, "CLK9988776655", "Unique click identifier"},
	{"SharedId", String, "social_post_01", "Partner shared ID"},
	{"PromoCode", String, "SAVE20", "General promo code"},
	{"CustomerStatus", String, "EXISTING", "Customer status"},
	{"Oid", String, "ORD-554433", "Order ID"},
	{"Note", String, "Partial return processed", "Note supplied with action"},
	{"CustomerPostCode", String, "94105", "Customer Post Code"},
	{"CustomerCity", String, "San Francisco", "Customer City"},
	{"CustomerCountry", String, "US", "Customer Country Code"},
	{"CustomerRegion", String, "CA", "Customer Region"},
	{"CustomerId", String, "CUST-12345", "Customer ID"},
	{"CustomerEmail", String, "a665a45920422f9d417...", "Hashed Customer Email"},
	{"IpAddress", String, "192.168.1.1", "IP Address"},
	{"CallerId", String, nil, "Phone number of the caller"},
	{"Text1", String, "Custom Val 1", "Text 1"},
	{"Date1", Date, "2026-04-08", "Date 1"},
	{"Money1", Decimal, 10.00, "Money 1"},
	{"Numeric1", Integer, int64(1), "Numeric 1"},
	{"appPackage", String, "com.brand.app", "Mobile app package"},
	{"appName", String, "BrandStore", "Mobile app name"},
	{"appVersion", String, "4.2.1", "Mobile app version"},
	{"deviceOs", String, "iOS", "Device operating system"},
	{"deviceOsVersion", String, "17.4", "Device OS version"},
	{"deviceManuf", String, "Apple", "Device manufacturer"},
	{"deviceModel", String, "iPhone 15", "Device model"},
	{"macAddress", String, "00:1B:44:11:3A:B7", "MAC Address (Upper)"},
	{"macAddressLower", String, "00:1b:44:11:3a:b7", "MAC Address (Lower)"},
	{"macAddressAlpha", String, "001B44113AB7", "MAC Address (No colons)"},
	{"macAddressSha1", String, "47a32...", "MAC SHA1"},
	{"iosIfa", String, "EA7583CD-A667-48BC-B806-42ECB2B48606", "iOS Advertising ID"},
	{"iosAdTracking", String, "1", "iOS Ad Tracking setting"},
	{"androidId", String, nil, "Android ID"},
	{"deviceId", String, "D-556677", "Device ID"},
	{"deviceIp", String, "192.168.1.1", "Device IP"},
}

// itemRows are the fields of the items collection, named as in the seed's
// join block (sku, amt -> item_price, cat -> category, qty -> quantity,
// cartamt, rbt, name). The seed gives no comments for them; the descriptions
// are ours. rbt is a string: the seed's template quotes it, as it quotes sku,
// cat and name ("rbt":"{i.rbt}"), so a number there would be sent as text.
var itemRows = []row{
	{"sku", String, nil, "Item SKU"},
	{"amt", Decimal, nil, "Item price"},
	{"cat", String, nil, "Item category"},
	{"qty", Integer, nil, "Item quantity"},
	{"cartamt", Decimal, nil, "Cart amount for the item (price times quantity)"},
	{"rbt", String, nil, "Rebate on the item"},
	{"name", String, nil, "Item name"},
}

// Example items, values in itemRows order. They add up to the example's
// Amount (100.00 and 150.00).
var actionLifecycleItems = [][]any{
	{"SKU-1001", 60.00, "Footwear", int64(1), 60.00, "0.00", "Trail Runner 2"},
	{"SKU-2002", 20.00, "Accessories", int64(2), 40.00, "5.00", "Merino Socks"},
}

var trackingValueRequestItems = [][]any{
	{"SKU-3003", 100.00, "Electronics", int64(1), 100.00, "0.00", "Wireless Headphones"},
	{"SKU-4004", 25.00, "Accessories", int64(2), 50.00, "2.50", "USB-C Cable"},
}

var actionInquiryRows = []row{
	{"Id", Integer, int64(554433), "Unique identifier of the action inquiry in the system"},
	{"MediaPartnerId", Integer, int64(555), "Partner ID"},
	{"MediaPartnerName", String, "Top Tier Affiliates", "Partner Name"},
	{"CampaignId", Integer, int64(9876), "Program ID"},
	{"CampaignName", String, "Spring Global Promotion", "Program Name"},
	{"OrderId", String, "ORD-12345", "Order ID of the reported action"},
	{"TransactionDate", DateTime, "2026-04-01T14:30:00Z", "Transaction date of event that triggered action inquiry"},
	{"TransactionAmount", Decimal, 250.00, "Transaction amount of event that triggered action inquiry"},
	{"InquiryType", String, "MISSING_ACTION", "Type of action inquiry"},
	{"ExpectedPayout", Decimal, 25.00, "Payout amount expected by Partner"},
	{"ResolutionDeadlineDate", DateTime, "2026-05-01T00:00:00Z", "The date by which the inquiry must be accepted or declined"},
	{"TrackingLink", String, "https://proweb.com/click?cid=1&pid=555", "Tracking link provided by Partner"},
	{"ActionId", String, "ACT-999000", "Action ID (if associated with an existing action)"},
	{"AutoApprovalDate", DateTime, "2026-05-05T00:00:00Z", "The date the system will run the automatic approval rules"},
	{"ResolutionStatus", String, "PENDING", "The final resolution status for the action inquiry"},
	{"RejectReason", String, nil, "Reason why the action inquiry was rejected"},
	{"FinalPayout", Decimal, 0.00, "The final payout associated with the action inquiry"},
	{"ResolutionDate", DateTime, nil, "The date the inquiry was decided"},
	{"CreationDate", DateTime, "2026-04-08T10:05:00Z", "Date when the inquiry is created in the system"},
	{"InquiryNotes", String, "Customer claims they clicked the link but no credit was shown.", "Inquiry notes submitted by the Partner"},
	{"ResolutionNotes", String, nil, "Notes submitted when inquiry was decided"},
	{"Comments", String, `[{"user": "support_agent", "text": "Verifying click logs now."}, {"user": "partner", "text": "Customer provided receipt."}]`, "Comments added to the inquiry (in JSON format)"},
}

var actionClearingRows = []row{
	{"ActionTrackerId", Integer, int64(12345), "Event Type ID"},
	{"ActionTrackerName", String, "Standard Sale Tracker", "Event Type Name"},
	{"CampaignId", Integer, int64(9876), "Program ID"},
	{"CampaignName", String, "Spring Global Promotion", "Program Name"},
	{"MediaPartnerId", Integer, int64(555), "Partner ID"},
	{"MediaPartnerName", String, "Top Tier Affiliates", "Partner Name"},
	{"OrderIds", String, "ORD-9921,ORD-9922", "Order IDs of the reported actions (comma separated)"},
	{"ActionIds", String, "ACT-101,ACT-102", "Action IDs (comma separated)"},
	{"ClearedDate", DateTime, "2026-04-15T12:00:00Z", "Date (ISO 8601) when the action is scheduled to clear"},
	{"LedgerDate", DateTime, "2026-04-08T09:54:43Z", "Date (ISO 8601) when the action was cleared"},
}

var trackingValueRequestRows = []row{
	{"CampaignId", Integer, int64(9876), "Program ID"},
	{"ActionTrackerId", Integer, int64(12345), "Event Type ID"},
	{"MediaPartnerId", Integer, int64(555), "Partner ID"},
	{"ActionId", String, "ACT-778899", "Action ID"},
	{"Amount", Decimal, 150.00, "Action amount in account's currency"},
	{"Currency", String, "USD", "Currency for the action"},
	{"Oid", String, "ORD-554433", "Order ID"},
	{itemsMarker, 0, nil, "Breakdown of individual products in the action"},
	{"EventDate", DateTime, "2026-04-08T09:00:00Z", "Conversion date"},
	{"IpAddress", String, "192.168.1.1", "IP Address of the device"},
	{"RefClickId", String, "CLK9988776655", "Unique click identifier"},
}

var jobCompletedRows = []row{
	{"JobId", Integer, int64(10293847), "Unique ID of Job"},
	{"JobType", String, "REPORT_EXPORT", "The type of Job"},
	{"AccountId", Integer, int64(7744), "Account ID"},
	{"StartDate", DateTime, "2026-04-08T10:00:05Z", "The time the job started"},
	{"EndDate", DateTime, "2026-04-08T10:11:02Z", "The time the job completed"},
	{"RecordsProcessed", Integer, int64(5240), "The number of records processed or generated"},
	{"ApiJobDetailUri", String, "https://api.impact.com/jobs/10293847", "API URI to get more details about the job"},
	{"ApiResultUri", String, "https://api.impact.com/jobs/10293847/result", "API URI to get the result of the output of the job"},
	{"ResultDownloadUrlExp5", String, "https://download.impact.com/file?token=a1b2...&exp=5min", "URL to download the output (5-minute expiry)"},
	{"ResultDownloadUrlExp15", String, "https://download.impact.com/file?token=a1b2...&exp=15min", "URL to download the output (15-minute expiry)"},
	{"ResultDownloadUrlExp30", String, "https://download.impact.com/file?token=a1b2...&exp=30min", "URL to download the output (30-minute expiry)"},
	{"ResultDownloadUrlExp60", String, "https://download.impact.com/file?token=a1b2...&exp=60min", "URL to download the output (60-minute expiry)"},
}

// publisher_application's ids are quoted in the seed, so they are strings.
var publisherApplicationRows = []row{
	{"ProgramId", String, "9876", "Program ID"},
	{"TemplateTermsId", String, "4455", "Template Terms ID"},
	{"ContractId", String, "112233", "Contract ID"},
	{"ApplicationDate", DateTime, "2026-04-09T08:30:00Z", "Date of application"},
	{"PublisherId", String, "555", "Partner ID"},
	{"Name", String, "Elite Content Creators", "Partner Name"},
	{"BusinessModel", String, "SOCIAL_INFLUENCER", "Partner's primary business model"},
	{"Description", String, "A premium network of lifestyle and travel influencers.", "Profile description"},
	{"Address", String, "123 Marketing Way", "Street address"},
	{"City", String, "Los Angeles", "City"},
	{"State", String, "CA", "State"},
	{"Country", String, "US", "Country"},
	{"Language", String, "en-US", "Language"},
	{"PublisherSize", String, "M", "XS, S, M, L, XL"},
	{"PastRelationship", Boolean, false, "Boolean indicating previous contract"},
	{"MarketplaceApproved", Boolean, true, "Boolean indicating marketplace status"},
	{"ReceivedPayout", Boolean, true, "Boolean indicating if they have received a payout"},
}

// operational_event is Postback's own: an operational event (pkg/opsevents)
// sent to an account's endpoints of this type, through the same pipeline
// as every postback (docs/operations.md, "Operational events").
var operationalEventRows = []row{
	{"OperationalEventId", String, "endpoint.disabled:ep_01J…:1775635200000000", "The operational event's id (the same on every copy of it)"},
	{"Type", String, "endpoint.disabled", "endpoint.failing, endpoint.disabled, endpoint.recovered or delivery.dead"},
	{"EndpointId", String, "ep_01JABCDEFGHJKMNPQRSTVWXYZ", "The endpoint it is about"},
	{"DeliveryId", String, "", "The delivery it is about (delivery.dead)"},
	{"OccurredAt", DateTime, "2026-04-09T08:30:00Z", "When it happened"},
	{"Reason", String, "20 failed attempts in a row over 24h0m0s; last: status 503 is not 2xx", "Why, for a person"},
	{"ConsecutiveFailures", Integer, int64(20), "The endpoint's failed attempts in a row then (endpoint events)"},
	{"FailingSince", DateTime, "2026-04-08T08:30:00Z", "The first failed attempt of the run (endpoint events)"},
	{"LastFailureReason", String, "status 503 is not 2xx", "Why the endpoint's last attempt failed (endpoint events)"},
}
