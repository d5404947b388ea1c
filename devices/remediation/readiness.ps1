<#
.SYNOPSIS
    Autopatch Portal readiness checks: an Intune Remediations detection script (detection only).

.DESCRIPTION
    Runs the eight Windows Autopatch post-registration readiness checks on this device and prints one compact
    JSON object (at most 2,048 characters, which is what Intune keeps of a detection script's output):

      {"schemaVersion":1,"generatedDateTime":"2026-11-29T08:00:00Z",
       "checks":[{"name":"Internet connectivity","result":"passed","detail":""}, ...]}

    Exit code 1 when a check fails (Intune then shows the device as "With issues"), 0 otherwise.
    Run as SYSTEM in 64-bit Windows PowerShell 5.1 (runAsAccount system, runAs32Bit false); it changes nothing.
    The Autopatch Portal deploys it to the registration group and reads the output back in every discovery run.
#>
$ErrorActionPreference = 'Stop'
Set-StrictMode -Version 2.0

$OutputLimit = 2048
$MinimumBuilds = @{ 10 = 19045; 11 = 22621 }   # Windows 10 22H2, Windows 11 22H2 and later
$SupportedEditions = @('Enterprise', 'EnterpriseN', 'Professional', 'ProfessionalN', 'ProfessionalWorkstation',
    'ProfessionalWorkstationN', 'Education', 'EducationN', 'ProfessionalEducation', 'ProfessionalEducationN')
$Endpoints = [ordered]@{
    'Windows Autopatch network endpoints' = @('mmdcustomer.microsoft.com', 'mmdls.microsoft.com',
        'devicelistenerprod.microsoft.com', 'login.windows.net')
    'Microsoft Teams network endpoints'   = @('teams.microsoft.com', 'config.teams.microsoft.com')
    'Microsoft Edge network endpoints'    = @('msedge.api.cdp.microsoft.com', 'edge.microsoft.com')
}

function New-Check([string]$Name, [bool]$Passed, [string]$Detail) {
    [ordered]@{ name = $Name; result = $(if ($Passed) { 'passed' } else { 'failed' }); detail = $Detail }
}

function Get-PolicyValues([string]$Path) {
    # The names of the values a policy key holds (none when the key does not exist).
    if (-not (Test-Path -LiteralPath $Path)) { return @() }
    $item = Get-Item -LiteralPath $Path
    return @($item.GetValueNames() | Where-Object { $_ -ne '' })
}

function Test-Endpoint([string]$HostName) {
    # A TCP connection on 443 within 5 seconds, without Test-NetConnection's slow ping.
    $client = New-Object System.Net.Sockets.TcpClient
    try {
        $pending = $client.BeginConnect($HostName, 443, $null, $null)
        if ($pending.AsyncWaitHandle.WaitOne(5000) -and $client.Connected) { $client.EndConnect($pending); return $true }
        return $false
    } catch { return $false } finally { $client.Close() }
}

function Invoke-Check([string]$Name, [scriptblock]$Body) {
    # A check that throws fails with the error's message, so one broken check never hides the others.
    try { & $Body } catch { New-Check $Name $false ("Could not run the check: " + $_.Exception.Message) }
}

$checks = New-Object System.Collections.ArrayList

[void]$checks.Add((Invoke-Check 'Windows OS build, architecture and edition' {
    $name = 'Windows OS build, architecture and edition'
    $cv = Get-ItemProperty -LiteralPath 'HKLM:\SOFTWARE\Microsoft\Windows NT\CurrentVersion'
    $build = [int]$cv.CurrentBuildNumber
    $major = if ($build -ge 22000) { 11 } else { 10 }
    $arch = $env:PROCESSOR_ARCHITECTURE
    $problems = @()
    if ($build -lt $MinimumBuilds[$major]) { $problems += "build $build is older than $($MinimumBuilds[$major])" }
    if ($arch -notin @('AMD64', 'ARM64')) { $problems += "architecture $arch is not x64 or ARM64" }
    if ($cv.EditionID -notin $SupportedEditions) { $problems += "edition $($cv.EditionID) is not supported" }
    if ($problems) { New-Check $name $false ($problems -join '; ') }
    else { New-Check $name $true "Windows $major build $build, $arch, $($cv.EditionID)" }
}))

[void]$checks.Add((Invoke-Check 'Windows update policies managed via Intune' {
    $name = 'Windows update policies managed via Intune'
    $mdm = Get-PolicyValues 'HKLM:\SOFTWARE\Microsoft\PolicyManager\current\device\Update'
    if ($mdm.Count -gt 0) { New-Check $name $true "$($mdm.Count) Windows Update settings from MDM" }
    else { New-Check $name $false 'No Windows Update policy from Intune (MDM) reached the device.' }
}))

[void]$checks.Add((Invoke-Check 'Windows update policies managed via GPO' {
    $name = 'Windows update policies managed via GPO'
    $gpo = @(Get-PolicyValues 'HKLM:\SOFTWARE\Policies\Microsoft\Windows\WindowsUpdate') +
        @(Get-PolicyValues 'HKLM:\SOFTWARE\Policies\Microsoft\Windows\WindowsUpdate\AU')
    if ($gpo.Count -eq 0) { New-Check $name $true '' }
    else { New-Check $name $false ("Group Policy sets Windows Update: " + ($gpo -join ', ')) }
}))

[void]$checks.Add((Invoke-Check 'Office update policy managed via GPO' {
    $name = 'Office update policy managed via GPO'
    $gpo = Get-PolicyValues 'HKLM:\SOFTWARE\Policies\Microsoft\office\16.0\common\officeupdate'
    if ($gpo.Count -eq 0) { New-Check $name $true '' }
    else { New-Check $name $false ("Group Policy sets Office updates: " + ($gpo -join ', ')) }
}))

foreach ($entry in $Endpoints.GetEnumerator()) {
    $checkName = $entry.Key
    $hosts = $entry.Value
    [void]$checks.Add((Invoke-Check $checkName {
        $unreachable = @($hosts | Where-Object { -not (Test-Endpoint $_) })
        if ($unreachable.Count -eq 0) { New-Check $checkName $true '' }
        else { New-Check $checkName $false ("Not reachable on 443: " + ($unreachable -join ', ')) }
    }))
}

[void]$checks.Add((Invoke-Check 'Internet connectivity' {
    $name = 'Internet connectivity'
    if (Test-Endpoint 'www.msftconnecttest.com') { New-Check $name $true '' }
    else { New-Check $name $false 'www.msftconnecttest.com is not reachable on 443.' }
}))

function ConvertTo-Report([int]$DetailLimit) {
    foreach ($check in $checks) {
        if ($check.detail.Length -gt $DetailLimit) { $check.detail = $check.detail.Substring(0, [Math]::Max(0, $DetailLimit - 3)) + '...' }
    }
    $report = [ordered]@{
        schemaVersion     = 1
        generatedDateTime = (Get-Date).ToUniversalTime().ToString('yyyy-MM-ddTHH:mm:ssZ')
        checks            = @($checks)
    }
    return ($report | ConvertTo-Json -Depth 4 -Compress)
}

# Shorten the details, never the JSON, until the whole output fits what Intune keeps.
$limit = 240
$json = ConvertTo-Report $limit
while ($json.Length -gt $OutputLimit -and $limit -gt 0) {
    $limit = [Math]::Max(0, $limit - 40)
    $json = ConvertTo-Report $limit
}
Write-Output $json
if (@($checks | Where-Object { $_.result -eq 'failed' }).Count -gt 0) { exit 1 }
exit 0
