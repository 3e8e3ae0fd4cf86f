package msim

// The licence catalogue of the simulator: Microsoft's SKUs (skuId,
// skuPartNumber) and the service plans they contain (servicePlanId,
// servicePlanName, and the "service" string Graph shows in assignedPlans).
// MCOEV, TEAMS1 and MCOSTANDARD identifiers are cross-checked in the
// project's research; the others follow Microsoft's published "Product names
// and service plan identifiers for licensing" list as remembered and should
// be re-confirmed there before production code depends on them.

// Plan is one service plan as Graph names it.
type Plan struct {
	ID      string // servicePlanId
	Name    string // servicePlanName
	Service string // "service" in assignedPlans
}

// Well-known service plans.
var (
	PlanTeams        = Plan{"57ff2da0-773e-42df-b2af-ffb7a2317929", "TEAMS1", "TeamspaceAPI"}
	PlanTeamsPhone   = Plan{"4828c8ec-dc2e-4779-b502-87ac9ce28ab7", "MCOEV", "MicrosoftCommunicationsOnline"}
	PlanSkypeOnline  = Plan{"0feaeb32-d00e-4d66-bd5a-43b5b83db82c", "MCOSTANDARD", "MicrosoftCommunicationsOnline"}
	PlanDomesticCall = Plan{"4ed3ff63-69d7-4fb7-b984-5aec7f605ca8", "MCOPSTN1", "MicrosoftCommunicationsOnline"}
	PlanIntlCall     = Plan{"5a10155d-f5c1-411a-a8ec-e99aae125390", "MCOPSTN2", "MicrosoftCommunicationsOnline"}
	PlanDomestic120  = Plan{"54a152dc-90de-4996-93d2-bc47e670fc06", "MCOPSTN5", "MicrosoftCommunicationsOnline"}
	PlanCommCredits  = Plan{"505e180f-f7e0-4b65-91d4-00d670bbd18c", "MCOPSTNC", "MicrosoftCommunicationsOnline"}
	PlanVirtualUser  = Plan{"f47330e9-c134-43b3-9993-e7f004506889", "MCOEV_VIRTUALUSER", "MicrosoftCommunicationsOnline"}
	PlanAudioConf    = Plan{"3e26ee1f-8a5f-4d52-aee2-b81ce45c8f40", "MCOMEETADV", "MicrosoftCommunicationsOnline"}
	PlanExchangeE    = Plan{"efb87545-963c-4e0d-99df-69c6916d9eb0", "EXCHANGE_S_ENTERPRISE", "exchange"}
	PlanExchangeS    = Plan{"9aaf7827-d63c-4b61-89c3-182f06f82e5c", "EXCHANGE_S_STANDARD", "exchange"}
	PlanSharePointE  = Plan{"5dbe027f-2339-4123-9542-606e4d348a72", "SHAREPOINTENTERPRISE", "SharePoint"}
	PlanSharePointS  = Plan{"c7699d2e-19aa-44de-8edf-1736da088ca1", "SHAREPOINTSTANDARD", "SharePoint"}
	PlanOfficeApps   = Plan{"43de0ff5-c92c-492b-9116-175376d08c38", "OFFICESUBSCRIPTION", "MicrosoftOffice"}
	PlanIntune       = Plan{"c1ec4a95-1f05-45b3-a911-aa3fa01094f5", "INTUNE_A", "SCO"}
)

// SKU is one licence product.
type SKU struct {
	ID         string // skuId
	PartNumber string // skuPartNumber
	Name       string // product name for people
	Plans      []Plan
}

// Catalogue is every SKU the simulator knows, in a fixed order: a user's
// licences are a bit set over this slice, so it holds at most 32 entries.
var Catalogue = []SKU{
	{"6fd2c87f-b296-42f0-b197-1e91e994b900", "ENTERPRISEPACK", "Office 365 E3",
		[]Plan{PlanTeams, PlanSkypeOnline, PlanExchangeE, PlanSharePointE, PlanOfficeApps}},
	{"c7df2760-2c81-4ef7-b578-5b5392b571df", "ENTERPRISEPREMIUM", "Office 365 E5",
		[]Plan{PlanTeams, PlanSkypeOnline, PlanTeamsPhone, PlanAudioConf, PlanExchangeE, PlanSharePointE, PlanOfficeApps}},
	{"05e9a617-0261-4cee-bb44-138d3ef5d965", "SPE_E3", "Microsoft 365 E3",
		[]Plan{PlanTeams, PlanSkypeOnline, PlanExchangeE, PlanSharePointE, PlanOfficeApps, PlanIntune}},
	{"06ebc4ee-1bb5-47dd-8120-11324bc54e06", "SPE_E5", "Microsoft 365 E5",
		[]Plan{PlanTeams, PlanSkypeOnline, PlanTeamsPhone, PlanAudioConf, PlanExchangeE, PlanSharePointE, PlanOfficeApps, PlanIntune}},
	{"3b555118-da6a-4418-894f-7df1e2096870", "O365_BUSINESS_ESSENTIALS", "Microsoft 365 Business Basic",
		[]Plan{PlanTeams, PlanSkypeOnline, PlanExchangeS, PlanSharePointS}},
	{"f245ecc8-75af-4f8e-b61f-27d8114de5f3", "O365_BUSINESS_PREMIUM", "Microsoft 365 Business Standard",
		[]Plan{PlanTeams, PlanSkypeOnline, PlanExchangeS, PlanSharePointS, PlanOfficeApps}},
	{"cbdc14ab-d96c-4c30-b9f4-6ada7cdc1d46", "SPB", "Microsoft 365 Business Premium",
		[]Plan{PlanTeams, PlanSkypeOnline, PlanExchangeS, PlanSharePointS, PlanOfficeApps, PlanIntune}},
	{"7e74bd05-2c47-404e-829a-ba95c66fe8e5", "Microsoft_Teams_Enterprise_New", "Microsoft Teams Enterprise",
		[]Plan{PlanTeams, PlanSkypeOnline}},
	{"e43b5b99-8dfb-405f-9987-dc307f34bcbd", "MCOEV", "Microsoft Teams Phone Standard",
		[]Plan{PlanTeamsPhone}},
	{"0dab259f-bf13-4952-b7f8-7db8f131b28d", "MCOPSTN1", "Microsoft Teams Domestic Calling Plan",
		[]Plan{PlanDomesticCall}},
	{"d3b4fe1f-9992-4930-8acb-ca6ec609365e", "MCOPSTN2", "Microsoft Teams Domestic and International Calling Plan",
		[]Plan{PlanIntlCall}},
	{"11dee6af-eca8-419f-8061-6864517c1875", "MCOPSTN_5", "Microsoft Teams Domestic Calling Plan (120 min)",
		[]Plan{PlanDomestic120}},
	{"47794cd0-f0e5-45c5-9033-2eb6b5fc84e0", "MCOPSTNC", "Communications Credits",
		[]Plan{PlanCommCredits}},
	{"440eaaa8-b3e0-484b-a8be-62870b9ba70a", "PHONESYSTEM_VIRTUALUSER", "Microsoft Teams Phone Resource Account",
		[]Plan{PlanVirtualUser}},
	{"6070a4c8-34c6-4937-8dfb-39bbc6397a60", "MEETING_ROOM", "Microsoft Teams Rooms Standard",
		[]Plan{PlanTeams, PlanSkypeOnline, PlanTeamsPhone, PlanAudioConf, PlanExchangeE, PlanIntune}},
	{"4cde982a-ede4-4409-9ae6-b003453c8ea6", "Microsoft_Teams_Rooms_Pro", "Microsoft Teams Rooms Pro",
		[]Plan{PlanTeams, PlanSkypeOnline, PlanTeamsPhone, PlanAudioConf, PlanExchangeE, PlanIntune}},
	{"6af4b3d6-14bb-4a2a-960c-6c902aad34f3", "Microsoft_Teams_Rooms_Basic", "Microsoft Teams Rooms Basic",
		[]Plan{PlanTeams, PlanSkypeOnline, PlanExchangeE}},
}

// skuIndex maps a part number or skuId to its index in Catalogue.
var skuIndex = func() map[string]int {
	m := make(map[string]int, 2*len(Catalogue))
	for i, s := range Catalogue {
		m[s.PartNumber] = i
		m[s.ID] = i
	}
	if len(Catalogue) > 32 {
		panic("msim: Catalogue holds more than 32 SKUs")
	}
	return m
}()

// skuBit returns the bit of the SKU named by part number or skuId.
func skuBit(name string) (uint32, bool) {
	i, ok := skuIndex[name]
	if !ok {
		return 0, false
	}
	return 1 << uint(i), true
}

// skuNames returns the part numbers of a bit set, in catalogue order.
func skuNames(set uint32) []string {
	var out []string
	for i := range Catalogue {
		if set&(1<<uint(i)) != 0 {
			out = append(out, Catalogue[i].PartNumber)
		}
	}
	return out
}
