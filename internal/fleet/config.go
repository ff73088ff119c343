package fleet

import (
	"fmt"
	"strings"
)

// ConfigXML is a phone's SEP<MAC>.cnf.xml: its cluster's CallManager
// group and its model, grown with line entries to the size of a real
// phone's configuration (about 7 KB; 7.2 KB once signed).
func ConfigXML(ph Phone) []byte {
	var lines strings.Builder
	for i := 1; lines.Len() < 6000; i++ {
		fmt.Fprintf(&lines, `      <line button="%d" lineIndex="%d">
        <featureID>9</featureID><featureLabel>%04d</featureLabel><proxy>USECALLMANAGER</proxy><port>5060</port>
        <name>%04d</name><displayName>Desk %s line %d</displayName><autoAnswer><autoAnswerEnabled>2</autoAnswerEnabled></autoAnswer>
        <callWaiting>3</callWaiting><sharedLine>false</sharedLine><messageWaitingLampPolicy>3</messageWaitingLampPolicy>
      </line>
`, i, i, 1000+i, 1000+i, ph.MAC, i)
	}
	return fmt.Appendf(nil, `<?xml version="1.0" encoding="UTF-8"?>
<device xsi:type="axl:XIPPhone" ctiid="1">
  <fullConfig>true</fullConfig>
  <deviceProtocol>SIP</deviceProtocol>
  <devicePool>
    <name>DP-%[1]s</name>
    <callManagerGroup>
      <members>
        <member priority="0">
          <callManager>
            <name>cucm-%[1]s.example.com</name>
            <ports><sipPort>5060</sipPort><securedSipPort>5061</securedSipPort></ports>
            <processNodeName>cucm-%[1]s.example.com</processNodeName>
          </callManager>
        </member>
      </members>
    </callManagerGroup>
  </devicePool>
  <loadInformation model="%[2]s"></loadInformation>
  <capfAuthMode>0</capfAuthMode>
  <deviceSecurityMode>1</deviceSecurityMode>
  <name>SEP%[3]s</name>
  <sipProfile>
    <sipLines>
%[4]s    </sipLines>
  </sipProfile>
</device>
`, ph.Subcluster, ph.Model, ph.MAC, lines.String())
}
